import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../shared/fs/atomic-write';

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedsynth-atomic-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes text and bytes, replaces an existing file, and leaves no temporary file beside it', () => {
    const path = join(dir, 'state.json');
    writeFileAtomic(path, '{"a":1}\n');
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n');
    const bytes = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff);
    writeFileAtomic(path, bytes);
    expect(new Uint8Array(readFileSync(path))).toEqual(bytes);
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it.skipIf(process.platform === 'win32')('creates the file with the permissions asked for, whatever the old file had', () => {
    const path = join(dir, 'secret');
    writeFileSync(path, 'old', { mode: 0o644 });
    writeFileAtomic(path, 'new', { mode: 0o600 });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    writeFileAtomic(join(dir, 'public'), 'x');
    expect(statSync(join(dir, 'public')).mode & 0o777).toBe(0o644 & ~process.umask());
  });

  it('fails with the path named when the directory is missing, and creates nothing', () => {
    const path = join(dir, 'missing', 'state.json');
    expect(() => writeFileAtomic(path, 'x')).toThrow(/missing/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it.skipIf(process.platform === 'win32')('replaces a symbolic link at the target instead of writing through it', () => {
    const outside = join(dir, 'outside.txt');
    writeFileSync(outside, 'keep');
    const path = join(dir, 'state.json');
    symlinkSync(outside, path);
    writeFileAtomic(path, 'new');
    expect(readFileSync(outside, 'utf8')).toBe('keep');
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).isFile()).toBe(true);
  });

  it('leaves the target as it was and no temporary file when the rename fails', () => {
    // A directory at the target: the new file is written and synced, and the rename onto it fails.
    const path = join(dir, 'state.json');
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'kept');
    expect(() => writeFileAtomic(path, 'new')).toThrow(/EISDIR|EEXIST|ENOTEMPTY|EPERM|directory/i);
    expect(readFileSync(join(path, 'inside'), 'utf8')).toBe('kept');
    expect(readdirSync(dir)).toEqual(['state.json']);
  });
});
