// One way to replace a file so that a crash or power loss leaves either the old contents or the
// new, never an empty or torn file: a fresh temporary file in the same directory (created
// exclusively, with its final permissions from the start), written, fsync'd, renamed over the
// target, then the directory fsync'd so the rename itself survives. State that must outlive a
// crash goes through here: the privacy ledger's head and the cached DP releases at a bank (a torn
// one would stop the agent until someone restores it), the coordinator's checkpoints.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Permissions of the file as created (default 0o644; 0o600 for anything only the owner may read). */
  mode?: number;
}

/** Replaces `path` with `data` atomically and durably (see the header). On error nothing is left behind and `path` is as it was. */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  // 'wx': a name nobody else can have planted (a link there fails the open instead of being followed).
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', opts.mode ?? 0o644);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  syncDirectory(dir);
}

/** fsync of a directory, so a rename in it is durable. Some platforms cannot open a directory (Windows): there the rename stands as the OS left it. */
function syncDirectory(dir: string): void {
  let dfd: number;
  try {
    dfd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(dfd);
  } catch {
    // EINVAL/EISDIR where directories cannot be fsync'd; the file's own data is already on disk.
  } finally {
    closeSync(dfd);
  }
}
