import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { generateIdentity, keyFingerprint, loadIdentity, parsePublicIdentity, ProtocolError, publicIdentity, saveIdentity } from '../../protocol/index';

const dir = mkdtempSync(join(tmpdir(), 'fedsynth-identity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return (err as ProtocolError).code;
  }
  return undefined;
}

describe('identity', () => {
  it('generates working Ed25519 and X25519 pairs', () => {
    const id = generateIdentity('bank-a');
    const sig = nacl.sign.detached(new Uint8Array([1, 2, 3]), id.sign.secretKey);
    expect(nacl.sign.detached.verify(new Uint8Array([1, 2, 3]), sig, id.sign.publicKey)).toBe(true);
    expect(Buffer.from(nacl.scalarMult.base(id.box.secretKey)).equals(Buffer.from(id.box.publicKey))).toBe(true);
    expect(() => generateIdentity('Bank A')).toThrow(/must match/);
  });

  it('saves with mode 0600, loads back identical, refuses to overwrite', () => {
    const id = generateIdentity('bank-a');
    const path = join(dir, 'bank-a.json');
    saveIdentity(path, id);
    if (process.platform !== 'win32') expect(statSync(path).mode & 0o777).toBe(0o600);
    const back = loadIdentity(path);
    expect(back).toEqual({ id: 'bank-a', sign: { publicKey: id.sign.publicKey, secretKey: id.sign.secretKey }, box: { publicKey: id.box.publicKey, secretKey: id.box.secretKey } });
    expect(code(() => saveIdentity(path, generateIdentity()))).toBe('INVALID_KEY_FILE');
    expect(loadIdentity(path).sign.publicKey).toEqual(id.sign.publicKey);
    saveIdentity(path, generateIdentity(), { overwrite: true });
    expect(loadIdentity(path).sign.publicKey).not.toEqual(id.sign.publicKey);
  });

  it.runIf(process.platform !== 'win32')('refuses a key file readable by group or others, saying how to fix it', () => {
    const path = join(dir, 'open.json');
    saveIdentity(path, generateIdentity());
    chmodSync(path, 0o644);
    expect(() => loadIdentity(path)).toThrow(/accessible by group or others \(mode 644\).*chmod 600/);
    expect(code(() => loadIdentity(path))).toBe('INSECURE_KEY_FILE');
    chmodSync(path, 0o640);
    expect(code(() => loadIdentity(path))).toBe('INSECURE_KEY_FILE');
  });

  it('rejects missing, corrupt and inconsistent key files', () => {
    expect(code(() => loadIdentity(join(dir, 'absent.json')))).toBe('INVALID_KEY_FILE');
    const path = join(dir, 'bad.json');
    const write = (s: string) => {
      writeFileSync(path, s, { mode: 0o600 });
      chmodSync(path, 0o600);
    };
    write('{not json');
    expect(() => loadIdentity(path)).toThrow(/not valid JSON/);
    write(JSON.stringify({ kind: 'something-else', version: 1 }));
    expect(() => loadIdentity(path)).toThrow(/not a fedsynth identity/);
    // Public key from one identity, secret from another: must be caught.
    const a = generateIdentity();
    const good = join(dir, 'good.json');
    saveIdentity(good, a);
    const json = JSON.parse(readFileSync(good, 'utf8'));
    json.signPublicKey = Buffer.from(generateIdentity().sign.publicKey).toString('base64');
    write(JSON.stringify(json));
    expect(() => loadIdentity(path)).toThrow(/signPublicKey does not belong to signSecretKey/);
    json.signPublicKey = 'AAAA';
    write(JSON.stringify(json));
    expect(() => loadIdentity(path)).toThrow(/signPublicKey must decode to 32 bytes/);
  });

  it('public identity: base64 keys, stable fingerprint, parseable for allow-lists', () => {
    const id = generateIdentity('bank-c');
    const pub = publicIdentity(id);
    expect(JSON.stringify(pub)).not.toContain(Buffer.from(id.sign.secretKey).toString('base64').slice(0, 20));
    expect(pub.fingerprint).toMatch(/^([0-9a-f]{4}:){7}[0-9a-f]{4}$/);
    expect(keyFingerprint(id.sign.publicKey)).toBe(pub.fingerprint);
    expect(keyFingerprint(generateIdentity().sign.publicKey)).not.toBe(pub.fingerprint);
    const parsed = parsePublicIdentity(JSON.parse(JSON.stringify(pub)));
    expect(parsed.signPublicKey).toEqual(id.sign.publicKey);
    expect(parsed.id).toBe('bank-c');
    expect(() => parsePublicIdentity({ ...pub, fingerprint: '0000:0000:0000:0000:0000:0000:0000:0000' })).toThrow(/does not match/);
    expect(() => parsePublicIdentity({ ...pub, boxPublicKey: 'abc' })).toThrow(/boxPublicKey/);
  });
});
