// Pure aggregation maths over (tensors, weight) pairs. No I/O, no tfjs: the coordinator never needs
// a model runtime to aggregate, and these functions are trivially testable.

import type { Tensors } from './types';

export class AggregationError extends Error {
  override name = 'AggregationError';
}

/** Checks that every list has the same tensor names and shapes, in the same order, as `reference`. */
export function assertSameLayout(reference: Tensors, other: Tensors, label: string): void {
  if (reference.length !== other.length) {
    throw new AggregationError(`${label}: expected ${reference.length} tensors, got ${other.length}`);
  }
  for (let i = 0; i < reference.length; i++) {
    const a = reference[i]!;
    const b = other[i]!;
    if (a.name !== b.name) throw new AggregationError(`${label}: tensor ${i} is '${b.name}', expected '${a.name}'`);
    if (a.shape.length !== b.shape.length || a.shape.some((d, k) => d !== b.shape[k])) {
      throw new AggregationError(`${label}: tensor '${a.name}' has shape [${b.shape}], expected [${a.shape}]`);
    }
    if (a.data.length !== b.data.length) {
      throw new AggregationError(`${label}: tensor '${a.name}' has ${b.data.length} values, expected ${a.data.length}`);
    }
  }
}

/**
 * Weighted mean Σ w_k·u_k / Σ w_k (McMahan et al. 2017, FedAvg). Accumulates in float64 so that
 * averaging many banks does not lose precision, then rounds once to float32.
 */
export function weightedMean(items: { tensors: Tensors; weight: number }[]): Tensors {
  if (items.length === 0) throw new AggregationError('cannot average zero updates');
  let total = 0;
  for (const it of items) {
    if (!Number.isFinite(it.weight) || it.weight <= 0) {
      throw new AggregationError(`weights must be positive and finite, got ${it.weight}`);
    }
    total += it.weight;
  }
  const first = items[0]!.tensors;
  items.forEach((it, k) => assertSameLayout(first, it.tensors, `update ${k}`));
  return first.map((t, i) => {
    const acc = new Float64Array(t.data.length);
    for (const it of items) {
      const w = it.weight / total;
      const src = it.tensors[i]!.data;
      for (let j = 0; j < acc.length; j++) acc[j]! += w * src[j]!;
    }
    return { name: t.name, shape: [...t.shape], data: Float32Array.from(acc) };
  });
}

/**
 * FedAvg from a sum (secure aggregation): Σ w_k·u_k / Σ w_k, when only the weighted sum and the
 * total weight are known. Equals weightedMean of the same items up to float rounding.
 */
export function meanFromSum(weightedSum: Tensors, totalWeight: number): Tensors {
  if (!Number.isFinite(totalWeight) || totalWeight <= 0) throw new AggregationError(`total weight must be positive and finite, got ${totalWeight}`);
  return weightedSum.map((t) => {
    const out = new Float32Array(t.data.length);
    for (let j = 0; j < out.length; j++) {
      const v = t.data[j]! / totalWeight;
      if (!Number.isFinite(v)) throw new AggregationError(`aggregated sum of '${t.name}' is not finite at ${j}`);
      out[j] = v;
    }
    return { name: t.name, shape: [...t.shape], data: out };
  });
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): drops the `trim` largest and smallest values per
 * coordinate before averaging; robust to a minority of corrupted updates. Unweighted by design.
 */
export function trimmedMean(lists: Tensors[], trim: number): Tensors {
  if (lists.length === 0) throw new AggregationError('cannot average zero updates');
  if (!Number.isInteger(trim) || trim < 0 || 2 * trim >= lists.length) {
    throw new AggregationError(`trim ${trim} must satisfy 0 <= 2*trim < ${lists.length} updates`);
  }
  const first = lists[0]!;
  lists.forEach((l, k) => assertSameLayout(first, l, `update ${k}`));
  const n = lists.length;
  const column = new Float64Array(n);
  return first.map((t, i) => {
    const out = new Float32Array(t.data.length);
    for (let j = 0; j < out.length; j++) {
      for (let k = 0; k < n; k++) column[k] = lists[k]![i]!.data[j]!;
      column.sort();
      let s = 0;
      for (let k = trim; k < n - trim; k++) s += column[k]!;
      out[j] = s / (n - 2 * trim);
    }
    return { name: t.name, shape: [...t.shape], data: out };
  });
}

/** global + lr·delta, tensor by tensor (server learning rate 1 gives plain FedAvg). */
export function applyDelta(global: Tensors, delta: Tensors, serverLr = 1): Tensors {
  assertSameLayout(global, delta, 'aggregated update');
  return global.map((g, i) => {
    const d = delta[i]!.data;
    const out = new Float32Array(g.data.length);
    for (let j = 0; j < out.length; j++) out[j] = g.data[j]! + serverLr * d[j]!;
    return { name: g.name, shape: [...g.shape], data: out };
  });
}

/** Global L2 norm across all tensors of a list. */
export function l2Norm(tensors: Tensors): number {
  let s = 0;
  for (const t of tensors) for (let j = 0; j < t.data.length; j++) s += t.data[j]! * t.data[j]!;
  return Math.sqrt(s);
}

/**
 * The published model after a round: the generator's tensors ('G/…') as an exponential moving
 * average over rounds, ema ← β·ema + (1 − β)·next, everything else (the discriminator) as `next`.
 * GAN training oscillates from round to round (bench/quality-trace.ts shows column shapes jumping
 * ±0.2 between snapshots on credit-default, centralised or federated); averaging the generator's
 * weights over iterates (Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training",
 * ICLR 2019) smooths what gets sampled. Training itself continues from `next`. `prev` undefined
 * (first round) publishes `next` as is.
 */
export function emaGenerator(prev: Tensors | undefined, next: Tensors, beta: number, networks: readonly string[] = SAMPLED_NETWORKS): Tensors {
  if (!(beta >= 0 && beta < 1)) throw new AggregationError(`generator EMA β must be in [0, 1), got ${beta}`);
  if (!prev || beta === 0) return next;
  return blendGenerator(prev, next, beta, networks);
}

/**
 * The networks the sampler uses, averaged in the published model: the generator G and the
 * target's classifier C, whose labels the sampler draws. Under DP-SGD each round leaves fresh
 * noise in C's weights; averaging its iterates (Polyak-Ruppert, as De et al. 2022 do for DP-SGD)
 * is post-processing and removes part of it.
 */
export const SAMPLED_NETWORKS: readonly string[] = ['G/', 'C/'];

/**
 * The β to use for the t-th published round (t = 1, 2, …): min(β, 1 − 1/t). The first rounds are
 * then a plain average of all rounds so far (round 1 alone, then (1 + 2)/2, …). A short run is
 * not dominated by its first, least-trained generator, and the initial random weights never enter.
 */
export function emaWarmupBeta(beta: number, t: number): number {
  if (!Number.isSafeInteger(t) || t < 1) throw new AggregationError(`published round number must be an integer ≥ 1, got ${t}`);
  return Math.min(beta, 1 - 1 / t);
}

function blendGenerator(prev: Tensors, next: Tensors, beta: number, networks: readonly string[]): Tensors {
  assertSameLayout(next, prev, 'generator EMA');
  return next.map((t, i) => {
    if (!networks.some((n) => t.name.startsWith(n))) return t;
    const p = prev[i]!.data;
    const out = new Float32Array(t.data.length);
    for (let j = 0; j < out.length; j++) out[j] = beta * p[j]! + (1 - beta) * t.data[j]!;
    return { name: t.name, shape: [...t.shape], data: out };
  });
}
