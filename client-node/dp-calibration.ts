// The bank's DP release for calibrating the consortium classifier C's labels after training
// (shared/model/label-calibration.ts): per bin of C's score, the bank's rows and, among them, its
// rows of the class, each count with Gaussian noise, charged to the ledger BEFORE release. One
// record adds 1 to one bin's row count and at most 1 to the same bin's class count: L2
// sensitivity √2 (add/remove adjacency, as the ledger's other releases).
import { DEFAULT_ORDERS, rdpGaussian, rdpToEpsilon } from '../shared/privacy/rdp';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { CALIBRATION_SENSITIVITY, type CalibrationCounts } from '../shared/model/label-calibration';
import type { Budget, PrivacyLedger } from './ledger';

/** RDP of the release at noise multiplier z (noise sd z·√2): what the agent plans into its DP-SGD noise. */
export function calibrationRdp(noiseMultiplier: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  return rdpGaussian(noiseMultiplier * CALIBRATION_SENSITIVITY, CALIBRATION_SENSITIVITY, orders);
}

export interface NoisyCalibrationCounts extends CalibrationCounts {
  noiseStd: number;
  /** ε of this release on its own, at delta. */
  epsilon: number;
  delta: number;
}

/**
 * Charges the ledger (throws BudgetExceededError past the budget: then nothing is released), then
 * adds the noise (addCalibrationNoise).
 */
export function releaseCalibrationCounts(exact: CalibrationCounts, o: { noiseMultiplier: number; ledger: PrivacyLedger; budget: Budget }): NoisyCalibrationCounts {
  const z = checkNoiseMultiplier(o.noiseMultiplier);
  const bins = checkBins(exact);
  o.ledger.charge({ kind: 'counts', params: { sigma: z * CALIBRATION_SENSITIVITY, sensitivity: CALIBRATION_SENSITIVITY }, note: `label calibration: rows and class rows in ${bins} bins of the classifier's score` }, o.budget);
  return {
    ...addCalibrationNoise(exact, z),
    epsilon: rdpToEpsilon(DEFAULT_ORDERS, calibrationRdp(z), o.budget.delta).epsilon,
    delta: o.budget.delta,
  };
}

/**
 * N(0, (z·√2)²) from node:crypto on every count. Charges nothing: the agent only reaches it through
 * releaseCalibrationCounts; bench/federated.ts, which has no ledger, accounts for it in its σ plan.
 */
export function addCalibrationNoise(exact: CalibrationCounts, noiseMultiplier: number): CalibrationCounts & { noiseStd: number } {
  const sd = checkNoiseMultiplier(noiseMultiplier) * CALIBRATION_SENSITIVITY;
  const bins = checkBins(exact);
  const noise = secureGaussian(2 * bins, sd);
  return { rows: exact.rows.map((v, b) => v + noise[b]!), positives: exact.positives.map((v, b) => v + noise[bins + b]!), noiseStd: sd };
}

function checkNoiseMultiplier(z: number): number {
  if (!(Number.isFinite(z) && z > 0)) throw new Error(`label calibration: the noise multiplier must be a finite number > 0, got ${z}`);
  return z;
}

function checkBins(exact: CalibrationCounts): number {
  const bins = exact.rows.length;
  if (bins < 2 || exact.positives.length !== bins) throw new Error(`label calibration: ${exact.rows.length} row counts and ${exact.positives.length} class counts`);
  return bins;
}
