// Turning locally trained weights into what leaves the bank: the delta against the round's global
// weights, L2-clipped as a whole so that one bank's influence on the aggregate is bounded.
import { dpFedAvgNoiseShare } from '../shared/privacy/clip';

export type Tensors = { name: string; shape: number[]; data: Float32Array }[];

export class UpdateError extends Error {
  override name = 'UpdateError';
}

export function prepareUpdate(local: Tensors, global: Tensors, clipNorm: number): { update: Tensors; norm: number; clipped: boolean } {
  if (local.length !== global.length) throw new UpdateError(`local model has ${local.length} tensors, global has ${global.length}`);
  let sq = 0;
  const update = local.map((l, i) => {
    const g = global[i]!;
    if (l.name !== g.name || l.data.length !== g.data.length) {
      throw new UpdateError(`tensor ${i}: local '${l.name}'[${l.data.length}] does not match global '${g.name}'[${g.data.length}]`);
    }
    const d = new Float32Array(l.data.length);
    for (let j = 0; j < d.length; j++) {
      const v = l.data[j]! - g.data[j]!;
      if (!Number.isFinite(v)) throw new UpdateError(`training diverged: tensor '${l.name}' has a non-finite value; nothing is sent`);
      d[j] = v;
      sq += v * v;
    }
    return { name: l.name, shape: [...l.shape], data: d };
  });
  const norm = Math.sqrt(sq);
  const clipped = clipNorm > 0 && norm > clipNorm;
  if (clipped) {
    const s = clipNorm / norm;
    for (const t of update) for (let j = 0; j < t.data.length; j++) t.data[j]! *= s;
  }
  return { update, norm, clipped };
}

/**
 * Client-level DP (DP-FedAvg, McMahan et al. 2018): Gaussian noise on the clipped update, std
 * σ_i = z·S/√n so that the sum over n banks carries N(0, z²S²) when aggregation is secure. With
 * n = 1 (the default) the bank's own update is already (S, zS)-Gaussian, whatever the others do.
 * The caller charges the ledger ({kind: 'client-level', q: 1, σ: z, steps: 1}) BEFORE this runs.
 */
export function addClientLevelNoise(update: Tensors, clipNorm: number, noiseMultiplier: number, nBanks: number, gaussian: (n: number, sigma: number) => Float32Array): number {
  if (!(clipNorm > 0)) throw new UpdateError('client-level DP needs a positive update clip norm');
  const sigma = dpFedAvgNoiseShare(clipNorm, noiseMultiplier, nBanks);
  for (const t of update) {
    const noise = gaussian(t.data.length, sigma);
    for (let j = 0; j < t.data.length; j++) t.data[j]! += noise[j]!;
  }
  return sigma;
}
