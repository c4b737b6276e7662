// `fedsynth keygen`: the secret key file is 0600 and a folder it creates for it is 0700.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Command } from 'commander';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from '../../cli/commands/keygen';
import { loadIdentity, parsePublicIdentity } from '../../protocol';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-keygen-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fedsynth keygen', () => {
  it('writes the secret key 0600 in a new 0700 folder and prints the matching public identity', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => (out.push(String(c)), true));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const file = join(dir, 'bank-1-state', 'identity.json');
    try {
      const program = new Command().exitOverride();
      register(program);
      await program.parseAsync(['node', 'fedsynth', 'keygen', '--out', file, '--id', 'bank-1']);
    } finally {
      spy.mockRestore();
      err.mockRestore();
    }
    expect(statSync(join(dir, 'bank-1-state')).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const pub = parsePublicIdentity(JSON.parse(out.join('')), 'keygen output');
    expect(Buffer.from(pub.signPublicKey).equals(Buffer.from(loadIdentity(file).sign.publicKey))).toBe(true);
  });
});
