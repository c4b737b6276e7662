// t-of-n Shamir secret sharing (Shamir 1979) of short byte strings over GF(2^8), byte by byte.
//
// Field: GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), generator 3. Each secret
// byte s gets its own random polynomial f(X) = s + a_1 X + … + a_{t−1} X^{t−1} with a_i uniform
// from the CSPRNG; the share for x ∈ {1, …, 255} is f(x) for every byte. Any t shares recover s by
// Lagrange interpolation at 0; any t − 1 shares are uniformly distributed and independent of s
// (perfect secrecy: for every candidate secret there is exactly one polynomial through them).
// At most 255 shareholders (x-coordinates 1..255).
import { randomFillSync } from 'node:crypto';
import { SecAggError } from './errors';

export interface Share {
  /** Evaluation point, 1..255 (the shareholder's position + 1). */
  x: number;
  /** f(x) for each byte of the secret. */
  y: Uint8Array;
}

const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let v = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = v;
    LOG[v] = i;
    // v *= 3 in GF(2^8): v·2 ⊕ v, reduced by 0x11b
    let d = v << 1;
    if (d & 0x100) d ^= 0x11b;
    v = d ^ v;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
}

/** Multiplication in GF(2^8). */
export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return EXP[LOG[a] + LOG[b]];
}

/** Division a / b in GF(2^8), b ≠ 0. */
export function gfDiv(a: number, b: number): number {
  if (b === 0) throw new SecAggError('INVALID_PARAMS', 'division by zero in GF(256)');
  if (a === 0) return 0;
  return EXP[LOG[a] + 255 - LOG[b]];
}

/** Evaluates the polynomial with coefficients coeffs[0] + coeffs[1]·x + … at x (Horner). */
export function gfPolyEval(coeffs: ArrayLike<number>, x: number): number {
  let acc = 0;
  for (let i = coeffs.length - 1; i >= 0; i--) acc = gfMul(acc, x) ^ coeffs[i];
  return acc;
}

export const MAX_SHARES = 255;

function checkThreshold(t: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_SHARES) throw new SecAggError('INVALID_PARAMS', `number of shares must be in [1, ${MAX_SHARES}], got ${String(n)}`);
  if (!Number.isSafeInteger(t) || t < 1 || t > n) throw new SecAggError('INVALID_PARAMS', `threshold must be an integer in [1, n=${n}], got ${String(t)}`);
}

/**
 * Splits `secret` into shares at x = xs[i] (default 1..n) so that any t of them recover it.
 * `random` fills the polynomial coefficients (default: OS CSPRNG; inject only in tests).
 */
export function split(secret: Uint8Array, t: number, n: number, xs?: readonly number[], random: (b: Uint8Array) => void = (b) => void randomFillSync(b)): Share[] {
  checkThreshold(t, n);
  const points = xs ?? Array.from({ length: n }, (_, i) => i + 1);
  if (points.length !== n) throw new SecAggError('INVALID_PARAMS', `need ${n} evaluation points, got ${points.length}`);
  const seen = new Set<number>();
  for (const x of points) {
    if (!Number.isInteger(x) || x < 1 || x > MAX_SHARES || seen.has(x)) throw new SecAggError('INVALID_PARAMS', `evaluation points must be distinct integers in [1, 255], got ${String(x)}`);
    seen.add(x);
  }
  const len = secret.length;
  const coeffs = new Uint8Array((t - 1) * len);
  random(coeffs);
  const shares = points.map((x) => ({ x, y: new Uint8Array(len) }));
  const poly = new Uint8Array(t);
  for (let k = 0; k < len; k++) {
    poly[0] = secret[k];
    for (let j = 1; j < t; j++) poly[j] = coeffs[(j - 1) * len + k];
    for (const s of shares) s.y[k] = gfPolyEval(poly, s.x);
  }
  coeffs.fill(0);
  return shares;
}

// Lagrange coefficients depend only on the x-coordinates: the server reconstructs many secrets
// from the same set of responders, so they are cached (bounded).
const LAGRANGE_CACHE = new Map<string, number[]>();
const LAGRANGE_CACHE_MAX = 4096;

/** Lagrange basis values L_j(at) for the points xs (distinct, non-zero). */
function lagrange(xs: readonly number[], at: number): number[] {
  const key = `${at}:${xs.join(',')}`;
  const hit = LAGRANGE_CACHE.get(key);
  if (hit) return hit;
  const l = lagrangeUncached(xs, at);
  if (LAGRANGE_CACHE.size >= LAGRANGE_CACHE_MAX) LAGRANGE_CACHE.clear();
  LAGRANGE_CACHE.set(key, l);
  return l;
}

function lagrangeUncached(xs: readonly number[], at: number): number[] {
  return xs.map((xj, j) => {
    let num = 1;
    let den = 1;
    for (let m = 0; m < xs.length; m++) {
      if (m === j) continue;
      num = gfMul(num, at ^ xs[m]);
      den = gfMul(den, xj ^ xs[m]);
    }
    return gfDiv(num, den);
  });
}

function interpolate(shares: readonly Share[], at: number, len: number): Uint8Array {
  const l = lagrange(shares.map((s) => s.x), at);
  const out = new Uint8Array(len);
  for (let j = 0; j < shares.length; j++) {
    const c = l[j];
    if (c === 0) continue;
    const y = shares[j].y;
    for (let k = 0; k < len; k++) out[k] ^= gfMul(y[k], c);
  }
  return out;
}

/**
 * Recovers the secret from ≥ t shares: interpolates through the first t and checks that every
 * further share lies on the same polynomial (else SHARE_MISMATCH: a corrupted or forged share).
 * Fewer than t shares is refused (they carry no information about the secret).
 */
export function combine(shares: readonly Share[], t: number): Uint8Array {
  if (!Number.isSafeInteger(t) || t < 1) throw new SecAggError('INVALID_PARAMS', `threshold must be an integer ≥ 1, got ${String(t)}`);
  if (shares.length < t) throw new SecAggError('BELOW_THRESHOLD', `${shares.length} share(s) cannot recover a ${t}-of-n secret`);
  const len = shares[0].y.length;
  const seen = new Set<number>();
  for (const s of shares) {
    if (!Number.isInteger(s.x) || s.x < 1 || s.x > MAX_SHARES || seen.has(s.x)) throw new SecAggError('INVALID_MESSAGE', `share x-coordinates must be distinct integers in [1, 255], got ${String(s.x)}`);
    if (!(s.y instanceof Uint8Array) || s.y.length !== len) throw new SecAggError('INVALID_MESSAGE', 'shares differ in length');
    seen.add(s.x);
  }
  const base = shares.slice(0, t);
  for (const extra of shares.slice(t)) {
    const expect = interpolate(base, extra.x, len);
    for (let k = 0; k < len; k++) {
      if (expect[k] !== extra.y[k]) throw new SecAggError('SHARE_MISMATCH', `share at x=${extra.x} is inconsistent with the others`);
    }
  }
  return interpolate(base, 0, len);
}
