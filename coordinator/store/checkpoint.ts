// Checkpoint files: the global model at one version. A checkpoint holds weights, the model and
// transformer configuration and metadata (the model card), never a training row.
//
// Layout: magic "FSCKPT01" | u32 LE header length | header JSON (UTF-8) | float32 LE payload.
// The header lists tensor names, shapes and byte offsets into the payload. Files are written
// atomically (temp file in the same directory, fsync, rename, fsync the directory) and checksummed
// with SHA-256 over the whole file; the checksum is stored in the state database.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/fs/atomic-write';

const MAGIC = Buffer.from('FSCKPT01', 'ascii');
const FORMAT_VERSION = 1;

export interface CheckpointTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  version: number;
  round: number;
  createdAt: string;
  modelConfig: unknown;
  transformer: unknown;
  tensors: CheckpointTensor[];
  /** Model card and sampling context: banks, ε per bank, category weights… */
  meta: Record<string, unknown>;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

interface Header {
  format: number;
  version: number;
  round: number;
  createdAt: string;
  modelConfig: unknown;
  transformer: unknown;
  meta: Record<string, unknown>;
  tensors: { name: string; shape: number[]; offset: number; length: number }[];
  payloadBytes: number;
}

export function encodeCheckpoint(ckpt: Checkpoint): Buffer {
  let offset = 0;
  const tensors = ckpt.tensors.map((t) => {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new CheckpointError(`tensor '${t.name}' has ${t.data.length} values for shape [${t.shape}]`);
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i]!)) throw new CheckpointError(`tensor '${t.name}' has a non-finite value at ${i}; refusing to checkpoint a broken model`);
    }
    const entry = { name: t.name, shape: [...t.shape], offset, length: t.data.length };
    offset += t.data.length * 4;
    return entry;
  });
  const header: Header = {
    format: FORMAT_VERSION,
    version: ckpt.version,
    round: ckpt.round,
    createdAt: ckpt.createdAt,
    modelConfig: ckpt.modelConfig,
    transformer: ckpt.transformer,
    meta: ckpt.meta,
    tensors,
    payloadBytes: offset,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(MAGIC.length + 4 + headerBytes.length + offset);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(headerBytes.length, MAGIC.length);
  headerBytes.copy(out, MAGIC.length + 4);
  let at = MAGIC.length + 4 + headerBytes.length;
  for (const t of ckpt.tensors) {
    for (let i = 0; i < t.data.length; i++, at += 4) out.writeFloatLE(t.data[i]!, at);
  }
  return out;
}

export function decodeCheckpoint(buf: Buffer, where = 'checkpoint'): Checkpoint {
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new CheckpointError(`${where} is not a fedsynth checkpoint (bad magic bytes)`);
  }
  const headerLen = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + headerLen > buf.length) throw new CheckpointError(`${where} is truncated: its header needs ${start + headerLen} bytes, the file has ${buf.length}`);
  let header: Header;
  try {
    header = JSON.parse(buf.subarray(start, start + headerLen).toString('utf8')) as Header;
  } catch (err) {
    throw new CheckpointError(`${where} has a corrupt header: ${(err as Error).message}`);
  }
  if (header.format !== FORMAT_VERSION) throw new CheckpointError(`${where} has format ${header.format}; this version reads format ${FORMAT_VERSION}`);
  const payloadStart = start + headerLen;
  const expected = payloadStart + header.payloadBytes;
  if (buf.length !== expected) throw new CheckpointError(`${where} is truncated or padded: expected ${expected} bytes, found ${buf.length}`);
  const tensors = header.tensors.map((t) => {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.length || t.offset < 0 || t.offset + t.length * 4 > header.payloadBytes) {
      throw new CheckpointError(`${where}: tensor '${t.name}' has an inconsistent layout`);
    }
    const data = new Float32Array(t.length);
    for (let i = 0; i < t.length; i++) {
      const v = buf.readFloatLE(payloadStart + t.offset + i * 4);
      if (!Number.isFinite(v)) throw new CheckpointError(`${where}: tensor '${t.name}' holds a non-finite value`);
      data[i] = v;
    }
    return { name: t.name, shape: t.shape, data };
  });
  return { version: header.version, round: header.round, createdAt: header.createdAt, modelConfig: header.modelConfig, transformer: header.transformer, meta: header.meta ?? {}, tensors };
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

export function writeCheckpoint(dir: string, ckpt: Checkpoint, fileName = `model-v${String(ckpt.version).padStart(6, '0')}.ckpt`): { path: string; sha256: string; bytes: number } {
  const bytes = encodeCheckpoint(ckpt);
  const path = join(dir, fileName);
  writeFileAtomic(path, bytes);
  return { path, sha256: sha256(bytes), bytes: bytes.length };
}

export function readCheckpoint(path: string, opts: { expectedSha256?: string } = {}): Checkpoint {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(err as Error).message}`);
  }
  if (opts.expectedSha256 && sha256(buf) !== opts.expectedSha256) {
    throw new CheckpointError(`checkpoint ${path} fails its checksum (expected sha256 ${opts.expectedSha256.slice(0, 16)}…): the file is corrupt or was replaced`);
  }
  return decodeCheckpoint(buf, `checkpoint ${path}`);
}
