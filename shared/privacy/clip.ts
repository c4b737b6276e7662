// Clipping helpers and client-level DP (DP-FedAvg, McMahan, Ramage, Talwar & Zhang 2018,
// "Learning Differentially Private Recurrent Language Models", ICLR): each bank clips its whole
// model update to L2 norm S; the aggregate (sum) gets Gaussian noise N(0, z²S²). With secure
// aggregation no one sees a single bank's update, so each of the n banks adds an independent share
// N(0, z²S²/n) and the sum carries exactly N(0, z²S²).
import { DEFAULT_ORDERS, type PrivacySpent, checkNoiseMultiplier, checkSteps, computeRdp, rdpToEpsilon } from './rdp';

export type Vector = Float32Array | Float64Array | readonly number[];

function checkVectors(parts: readonly Vector[]): void {
  if (!Array.isArray(parts)) throw new TypeError('expected a list of vectors (Float32Array / number[])');
}

function checkBound(name: string, s: number): void {
  if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0) throw new RangeError(`${name} must be a finite number > 0, got ${String(s)}`);
}

/** L2 norm of one vector or of the concatenation of several (a model update split by tensor).
 *  Accumulated in float64; throws on NaN/∞ entries since clipping cannot bound them. */
export function l2Norm(...parts: readonly Vector[]): number {
  checkVectors(parts);
  let s = 0;
  for (let p = 0; p < parts.length; p++) {
    const v = parts[p];
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      s += x * x;
    }
  }
  if (!Number.isFinite(s)) throw new RangeError('vector contains NaN or infinite entries (or overflows): cannot clip it');
  return Math.sqrt(s);
}

/** Multiplies every entry in place by `factor`. */
export function scaleInPlace(factor: number, ...parts: (Float32Array | Float64Array | number[])[]): void {
  if (!Number.isFinite(factor)) throw new RangeError(`scale factor must be finite, got ${factor}`);
  for (const v of parts) for (let i = 0; i < v.length; i++) v[i] *= factor;
}

/** The factor min(1, S/‖v‖) that clips a vector of norm `norm` to L2 norm S. */
export function clipFactor(norm: number, maxNorm: number): number {
  checkBound('clipping norm S', maxNorm);
  if (!(norm >= 0) || !Number.isFinite(norm)) throw new RangeError(`norm must be finite and ≥ 0, got ${norm}`);
  return norm > maxNorm ? maxNorm / norm : 1;
}

export interface ClipResult {
  /** Norm before clipping. */
  norm: number;
  /** Factor applied (1 when the update was already inside the ball). */
  factor: number;
  clipped: boolean;
}

/** Clips the concatenation of `parts` to L2 norm ≤ S in place (one factor for the whole update).
 *  The factor is shaved by 1e-6 relative so float32 rounding can never leave the norm above S. */
export function clipInPlace(maxNorm: number, ...parts: (Float32Array | Float64Array | number[])[]): ClipResult {
  const norm = l2Norm(...parts);
  let factor = clipFactor(norm, maxNorm);
  if (factor < 1) {
    factor *= 1 - 1e-6;
    scaleInPlace(factor, ...parts);
  }
  return { norm, factor, clipped: factor < 1 };
}

/** Copying variant of clipInPlace for a single vector. */
export function clipToNorm(v: Vector, maxNorm: number): Float32Array {
  const out = Float32Array.from(v as ArrayLike<number>);
  clipInPlace(maxNorm, out);
  return out;
}

/** Each bank's noise std σ_i = zS/√n so that the sum over n banks carries N(0, z²S²) (secure aggregation). */
export function dpFedAvgNoiseShare(clipNorm: number, noiseMultiplier: number, nBanks: number): number {
  checkBound('clipping norm S', clipNorm);
  checkNoiseMultiplier(noiseMultiplier);
  if (!Number.isSafeInteger(nBanks) || nBanks < 1) throw new RangeError(`number of banks must be an integer ≥ 1, got ${String(nBanks)}`);
  return (noiseMultiplier * clipNorm) / Math.sqrt(nBanks);
}

export interface ClientLevelOptions {
  /** Banks sampled per round. */
  banksPerRound: number;
  /** Banks in the consortium. */
  totalBanks: number;
  /** z: noise std on the sum divided by S. */
  noiseMultiplier: number;
  rounds: number;
  delta: number;
  orders?: readonly number[];
}

/** Client-level (ε, δ) over rounds: each round is a sampled Gaussian with q = banksPerRound/totalBanks
 *  and noise multiplier z (McMahan et al. 2018 §3, accounted with the RDP accountant). Note the
 *  unit protected is a whole bank's data; q is a Poisson rate only if banks are sampled that way. */
export function clientLevelEpsilon(o: ClientLevelOptions): PrivacySpent {
  if (!Number.isSafeInteger(o.totalBanks) || o.totalBanks < 1) throw new RangeError(`totalBanks must be an integer ≥ 1, got ${String(o.totalBanks)}`);
  if (!Number.isSafeInteger(o.banksPerRound) || o.banksPerRound < 1 || o.banksPerRound > o.totalBanks) {
    throw new RangeError(`banksPerRound must be an integer in [1, totalBanks=${o.totalBanks}], got ${String(o.banksPerRound)}`);
  }
  checkSteps(o.rounds);
  const orders = o.orders ?? DEFAULT_ORDERS;
  return rdpToEpsilon(orders, computeRdp(o.banksPerRound / o.totalBanks, o.noiseMultiplier, o.rounds, orders), o.delta);
}
