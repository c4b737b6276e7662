// Turning locally trained weights into what leaves the bank: the delta against the round's global
// weights, L2-clipped as a whole so that one bank's influence on the aggregate is bounded.

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
