// Pseudorandom mask expansion: a 32-byte seed → d uniform elements of Z_{2^32}.
//
// The PRG is AES-128 in counter mode (OpenSSL via node:crypto, AES-NI where the CPU has it), the
// instantiation Bonawitz et al. (CCS 2017, §6) use: key = the seed's first 16 bytes, counter block
// starting at zero, keystream = AES_k(0) ‖ AES_k(1) ‖ … . Every seed is uniform (32 fresh random
// bytes for a self mask, SHA-256 output for a pairwise seed: keys.ts), so its first 16 bytes are a
// uniform 128-bit key. A zero initial counter is safe because every seed is used for exactly one
// stream: self-mask seeds b_u are fresh random per round, pairwise seeds are derived per round and
// no seed is shared between purposes. Words are read little-endian, so masks are identical on every
// host.
//
// Why AES and not ChaCha20 (used before): the server's cost when banks drop is one expansion of d
// words per (survivor, dropped) pair, and AES-128-CTR (AES-NI) runs faster than OpenSSL's ChaCha20
// on these machines. Every bank and the coordinator must run the
// same PRG_ALGORITHM; it is part of the secure-aggregation protocol version.
//
// Speed: the keystream is produced in 256 KiB chunks and added into the target directly, with no
// d-sized temporary.
import { createCipheriv } from 'node:crypto';
import { SecAggError } from './errors';

export const PRG_ALGORITHM = 'aes-128-ctr';
const KEY_BYTES = 16;
export const SEED_BYTES = 32;
const CHUNK_WORDS = 1 << 16;
const ZERO_IV = Buffer.alloc(16);
const ZEROS = Buffer.alloc(CHUNK_WORDS * 4);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new SecAggError('INVALID_PARAMS', `PRG seed must be a ${SEED_BYTES}-byte Uint8Array, got ${seed instanceof Uint8Array ? `${seed.length} bytes` : typeof seed}`);
  }
}

/** Calls `visit(words, offset)` for consecutive keystream chunks covering d words. */
function stream(seed: Uint8Array, d: number, visit: (words: Uint32Array, offset: number) => void): void {
  checkSeed(seed);
  if (!Number.isSafeInteger(d) || d < 0) throw new SecAggError('INVALID_PARAMS', `mask length must be an integer ≥ 0, got ${String(d)}`);
  const cipher = createCipheriv(PRG_ALGORITHM, seed.subarray(0, KEY_BYTES), ZERO_IV);
  const aligned = new Uint32Array(Math.min(d, CHUNK_WORDS));
  for (let off = 0; off < d; off += CHUNK_WORDS) {
    const n = Math.min(CHUNK_WORDS, d - off);
    const bytes = cipher.update(n === CHUNK_WORDS ? ZEROS : ZEROS.subarray(0, n * 4));
    let words: Uint32Array;
    if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) {
      words = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
    } else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, n * 4);
      words = aligned.subarray(0, n);
      for (let i = 0; i < n; i++) words[i] = view.getUint32(4 * i, true);
    }
    visit(words, off);
  }
}

/** The mask PRG(seed) as a new Uint32Array of length d. */
export function expandMask(seed: Uint8Array, d: number): Uint32Array {
  const out = new Uint32Array(d);
  stream(seed, d, (w, off) => out.set(w, off));
  return out;
}

/** target += sign · PRG(seed)  (mod 2^32), in place, without materialising the mask. */
export function applyMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): Uint32Array {
  if (sign === 1) {
    stream(seed, target.length, (w, off) => {
      for (let i = 0; i < w.length; i++) target[off + i] += w[i];
    });
  } else if (sign === -1) {
    stream(seed, target.length, (w, off) => {
      for (let i = 0; i < w.length; i++) target[off + i] -= w[i];
    });
  } else {
    throw new SecAggError('INVALID_PARAMS', `mask sign must be 1 or -1, got ${String(sign)}`);
  }
  return target;
}
