// Privacy metrics of a synthetic set against the real training rows it was made from, with the
// holdout (real rows the generator never saw) as the yardstick of "as close as unseen real data is".
//  - exact-copy rate: share of ALL synthetic rows identical to some training row (every column);
//  - DCR (distance to closest record): synthetic->train vs holdout->train, 5th percentile/median;
//  - share closer to train: P(DCR of a synthetic row < DCR of a holdout row), both to the full
//    train set, ties counting half: 0.5 = synthetic rows sit no closer to the training records
//    than unseen real rows do; 1 = every synthetic row is closer (copies);
//  - NNDR: nearest / second-nearest train distance (small = sits on one record);
//  - membership inference on train members vs holdout non-members:
//    distance attack: score = -DCR to the synthetic set (Chen et al. 2020, GAN-Leaks);
//    density-ratio attack in the spirit of DOMIAS (van Breugel et al., AISTATS 2023): score =
//    log p_syn(x) - log p_ref(x) with k-NN density estimates (Loftsgaarden & Quesenberry 1965)
//    p(x) ~ k / (n r_k(x)^D), k = 1 on the synthetic set (to expose memorised points) and k = 5
//    on a reference set of real non-member rows (half of the holdout). AUC is invariant to the
//    unknown dimension D, so the score used is log r_5,ref(x) - log r_1,syn(x).
// Distances use nn.ts's normalised mixed metric. Queries are fixed-seed samples (sizes reported).
import type { Table } from './table';
import { fitDistanceEncoder, encodeForDistance, knnDistances, KNN_BACKEND } from './nn';
import { sampleIndices, quantileSorted, permutation, rng } from './random';
import { aucRoc, rocCurve } from './auc';

export interface PrivacyOptions {
  /**
   * Query rows sampled per set for distance metrics. Default: 5000, reduced (not below 1000) so
   * that the exact search stays under ~1.5e9 row-pair distances (see defaultQuerySample).
   */
  querySample?: number;
  seed?: number;
  threads?: number;
  onProgress?: (step: string) => void;
}

export interface PrivacyReport {
  exactCopyRate: number;
  /** Baseline: share of holdout rows that equal some training row (natural duplicates). */
  holdoutExactCopyRate: number;
  dcr: {
    synToTrainP5: number;
    holdoutToTrainP5: number;
    synToTrainMedian: number;
    holdoutToTrainMedian: number;
    shareCloserToTrain: number;
  };
  nndr: { syntheticMedian: number; holdoutMedian: number; syntheticP5: number };
  mia: { distanceAuc: number; densityAuc: number; members: number; nonMembers: number };
  sampling: {
    syntheticQueries: number;
    holdoutQueries: number;
    trainReference: number;
    holdoutReference: number;
    miaMembers: number;
    miaNonMembers: number;
    miaDensityReference: number;
    seed: number;
    note: string;
  };
  plots: {
    dcrSynthetic: number[];
    dcrHoldout: number[];
    miaDistanceRoc: { fpr: number[]; tpr: number[] };
    miaDensityRoc: { fpr: number[]; tpr: number[] };
  };
}

/** 53-bit hashes of whole rows (raw values, NaN-aware), for exact-copy detection. */
export function rowHashes(t: Table): Float64Array {
  const n = t.nRows;
  const h1 = new Uint32Array(n).fill(0x811c9dc5);
  const h2 = new Uint32Array(n).fill(0x9747b28c);
  const f = new Float64Array(1);
  const u = new Uint32Array(f.buffer);
  for (const c of t.columns) {
    for (let i = 0; i < n; i++) {
      let a: number;
      let b: number;
      if (c.kind === 'numeric') {
        const v = c.values[i]!;
        f[0] = Number.isNaN(v) ? Number.NaN : v === 0 ? 0 : v; // one NaN, +0 == -0
        a = u[0]!;
        b = u[1]!;
      } else {
        a = c.codes[i]!;
        b = 0x5bd1e995;
      }
      h1[i] = Math.imul(h1[i]! ^ a, 16777619) ^ Math.imul(b, 0x85ebca6b);
      h2[i] = Math.imul((h2[i]! ^ b) + 0x9e3779b9, 2246822519) ^ Math.imul(a, 0xc2b2ae35);
    }
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (h1[i]! >>> 0) * 2097152 + ((h2[i]! >>> 0) & 0x1fffff);
  return out;
}

/** Share of rows of `query` that appear exactly (all columns) in `reference`. */
export function exactCopyRate(reference: Table, query: Table): number {
  if (query.nRows === 0) return 0;
  const set = new Set(rowHashes(reference));
  const q = rowHashes(query);
  let c = 0;
  for (let i = 0; i < q.length; i++) if (set.has(q[i]!)) c++;
  return c / query.nRows;
}

function sortedCopy(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a).sort();
}

/** Column 0 (nearest distance) and column 1 of a k-NN result with stride k. */
function col(res: Float64Array, k: number, j: number): Float64Array {
  const n = res.length / k;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = res[i * k + j]!;
  return out;
}

/** Row-pair distance budget of the default sampling: ~30 s of exact search on 2 cores. */
export const PAIR_BUDGET = KNN_BACKEND === 'wasm-simd' ? 4e9 : 1.2e9;

/**
 * Default query sample: 5000, lowered so that Q synthetic + Q holdout queries against the train set
 * and Q MIA queries (half members, half non-members) against synthetic + reference stay within
 * PAIR_BUDGET; never below 1000.
 */
export function defaultQuerySample(nTrain: number, nHoldout: number, nSynthetic: number): number {
  const perQuery = 2 * nTrain + nSynthetic + nHoldout / 2;
  return Math.max(1000, Math.min(5000, Math.floor(PAIR_BUDGET / Math.max(1, perQuery))));
}

export async function privacyMetrics(train: Table, holdout: Table, synthetic: Table, opts: PrivacyOptions = {}): Promise<PrivacyReport> {
  const Q = opts.querySample ?? defaultQuerySample(train.nRows, holdout.nRows, synthetic.nRows);
  const seed = opts.seed ?? 42;
  const threads = opts.threads;
  const progress = opts.onProgress ?? (() => {});
  if (train.nRows < 2) throw new Error(`privacy: the training set needs at least 2 rows, got ${train.nRows}`);
  if (holdout.nRows < 4) throw new Error(`privacy: the holdout needs at least 4 rows, got ${holdout.nRows}`);
  if (synthetic.nRows < 1) throw new Error('privacy: the synthetic set is empty');

  progress('exact copies');
  const exact = exactCopyRate(train, synthetic);
  const holdoutExact = exactCopyRate(train, holdout);

  const enc = fitDistanceEncoder(train);
  const synQ = sampleIndices(synthetic.nRows, Q, seed);
  const holdQ = sampleIndices(holdout.nRows, Q, seed + 1);
  const eTrain = encodeForDistance(enc, train);
  const eSynQ = encodeForDistance(enc, synthetic, synQ);
  const eHoldQ = encodeForDistance(enc, holdout, holdQ);

  progress('DCR synthetic->train');
  const synTrain = await knnDistances(eSynQ, eTrain, 2, { threads });
  progress('DCR holdout->train');
  const holdTrain = await knnDistances(eHoldQ, eTrain, 2, { threads });

  const dcrSyn = col(synTrain, 2, 0);
  const dcrHold = col(holdTrain, 2, 0);
  // P(DCR_syn < DCR_holdout) + 0.5 P(tie), a Mann-Whitney comparison of the two DCR samples.
  const shareLabels = new Uint8Array(dcrSyn.length + dcrHold.length);
  shareLabels.fill(1, 0, dcrSyn.length);
  const shareScores = new Float64Array(shareLabels.length);
  dcrSyn.forEach((v, i) => (shareScores[i] = -v));
  dcrHold.forEach((v, i) => (shareScores[dcrSyn.length + i] = -v));
  const shareCloser = aucRoc(shareScores, shareLabels);
  const nndr = (res: Float64Array): Float64Array => {
    const n = res.length / 2;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const a = res[2 * i]!;
      const b = res[2 * i + 1]!;
      out[i] = b > 0 && Number.isFinite(b) ? a / b : a === 0 ? 0 : 1;
    }
    return out.sort();
  };
  const nnSyn = nndr(synTrain);
  const nnHold = nndr(holdTrain);
  const sDcrSyn = sortedCopy(dcrSyn);
  const sDcrHold = sortedCopy(dcrHold);

  // ---- membership inference: members = train rows, non-members = half B of the holdout; half A
  // of the holdout is the attacker's reference sample of the population (DOMIAS setting).
  progress('membership inference');
  const perm = permutation(holdout.nRows, rng(seed + 4));
  const half = Math.floor(holdout.nRows / 2);
  const refIdx = perm.slice(0, half).sort();
  const nonIdxAll = perm.slice(half).sort();
  const nNon = Math.min(Math.ceil(Q / 2), nonIdxAll.length);
  const nonPick = sampleIndices(nonIdxAll.length, nNon, seed + 5);
  const nonRows = Int32Array.from(nonPick, (i) => nonIdxAll[i]!);
  const memRows = sampleIndices(train.nRows, nNon, seed + 6);
  const eMem = encodeForDistance(enc, train, memRows);
  const eNon = encodeForDistance(enc, holdout, nonRows);
  const eSyn = encodeForDistance(enc, synthetic);
  const eRef = encodeForDistance(enc, holdout, refIdx);
  const kRef = Math.min(5, eRef.n);
  const memSyn = await knnDistances(eMem, eSyn, 1, { threads });
  const nonSyn = await knnDistances(eNon, eSyn, 1, { threads });
  const memRef = await knnDistances(eMem, eRef, kRef, { threads });
  const nonRef = await knnDistances(eNon, eRef, kRef, { threads });
  const labels = new Uint8Array(eMem.n + eNon.n);
  labels.fill(1, 0, eMem.n);
  const distScore = new Float64Array(labels.length);
  const densScore = new Float64Array(labels.length);
  const eps = 1e-9;
  for (let i = 0; i < eMem.n; i++) {
    distScore[i] = -memSyn[i]!;
    densScore[i] = Math.log(memRef[i * kRef + kRef - 1]! + eps) - Math.log(memSyn[i]! + eps);
  }
  for (let i = 0; i < eNon.n; i++) {
    distScore[eMem.n + i] = -nonSyn[i]!;
    densScore[eMem.n + i] = Math.log(nonRef[i * kRef + kRef - 1]! + eps) - Math.log(nonSyn[i]! + eps);
  }

  return {
    exactCopyRate: exact,
    holdoutExactCopyRate: holdoutExact,
    dcr: {
      synToTrainP5: quantileSorted(sDcrSyn, 0.05),
      holdoutToTrainP5: quantileSorted(sDcrHold, 0.05),
      synToTrainMedian: quantileSorted(sDcrSyn, 0.5),
      holdoutToTrainMedian: quantileSorted(sDcrHold, 0.5),
      shareCloserToTrain: shareCloser,
    },
    nndr: {
      syntheticMedian: quantileSorted(nnSyn, 0.5),
      holdoutMedian: quantileSorted(nnHold, 0.5),
      syntheticP5: quantileSorted(nnSyn, 0.05),
    },
    mia: { distanceAuc: aucRoc(distScore, labels), densityAuc: aucRoc(densScore, labels), members: eMem.n, nonMembers: eNon.n },
    sampling: {
      syntheticQueries: eSynQ.n,
      holdoutQueries: eHoldQ.n,
      trainReference: train.nRows,
      holdoutReference: holdout.nRows,
      miaMembers: eMem.n,
      miaNonMembers: eNon.n,
      miaDensityReference: eRef.n,
      seed,
      note:
        `DCR/NNDR: ${eSynQ.n} synthetic and ${eHoldQ.n} holdout rows (fixed-seed samples) against all ${train.nRows} train rows; ` +
        `exact copies over all ${synthetic.nRows} synthetic rows; MIA: ${eMem.n} train members vs ${eNon.n} holdout non-members ` +
        `against all synthetic rows, density reference = ${eRef.n} other holdout rows.`,
    },
    plots: {
      dcrSynthetic: Array.from(dcrSyn),
      dcrHoldout: Array.from(dcrHold),
      miaDistanceRoc: rocCurve(distScore, labels, 100),
      miaDensityRoc: rocCurve(densScore, labels, 100),
    },
  };
}
