// Histogram gradient-boosted decision trees for binary classification (logloss), in the manner of
// LightGBM (Ke et al. 2017) and sklearn's HistGradientBoostingClassifier: features binned once into
// <= 255 bins (+1 bin for missing), per-node gradient/hessian histograms, the sibling's histogram
// by subtraction from the parent's, leaf-wise (best-first) growth, Newton leaf values
// -G / (H + lambda) (Chen & Guestrin 2016), shrinkage, and early stopping on a validation split
// carved out of the TRAINING data only.
import type { Table } from './table';
import { quantileSorted, sampleIndices, stratifiedSplit } from './random';

export const MISSING_BIN = 255;
const NB = 256; // histogram slots per feature (255 value bins + missing)

/** Per-feature mapping from raw values to bins, fitted on training data. */
export interface FeatureBinner {
  name: string;
  kind: 'numeric' | 'categorical';
  /** numeric: ascending upper bounds; value x goes to the first bin b with x <= thresholds[b]. */
  thresholds?: Float64Array;
  /** categorical: code -> bin (categories ordered by training positive rate; unseen -> `unseenBin`). */
  codeToBin?: Int32Array;
  unseenBin?: number;
}

export interface Binner {
  features: FeatureBinner[];
}

/**
 * Fits bins on `table` (all its columns are features). Numeric: midpoints between distinct values
 * when there are <= 255 of them, else 255 quantile bins from a fixed-seed sample of <= 200k values.
 * Categorical: categories sorted by their positive rate in `y` (when given) so one threshold split
 * can group any set of similar categories (Fisher 1958 ordering, as LightGBM does with gradients);
 * rare tail categories beyond 254 share a bin.
 */
export function fitBinner(table: Table, y?: Uint8Array): Binner {
  const features: FeatureBinner[] = table.columns.map((c, k) => {
    if (c.kind === 'numeric') {
      const idx = sampleIndices(table.nRows, 200_000, 1000 + k);
      const vals: number[] = [];
      for (const i of idx) {
        const v = c.values[i]!;
        if (!Number.isNaN(v)) vals.push(v);
      }
      const s = Float64Array.from(vals).sort();
      const distinct: number[] = [];
      for (let i = 0; i < s.length; i++) if (i === 0 || s[i] !== s[i - 1]) distinct.push(s[i]!);
      let thr: number[];
      if (distinct.length <= 255) {
        thr = [];
        for (let i = 0; i + 1 < distinct.length; i++) thr.push((distinct[i]! + distinct[i + 1]!) / 2);
      } else {
        thr = [];
        for (let b = 1; b < 255; b++) {
          const q = quantileSorted(s, b / 255);
          if (thr.length === 0 || q > thr[thr.length - 1]!) thr.push(q);
        }
      }
      return { name: c.name, kind: 'numeric', thresholds: Float64Array.from(thr) };
    }
    const k2 = c.categories.length;
    const count = new Float64Array(k2);
    const pos = new Float64Array(k2);
    for (let i = 0; i < table.nRows; i++) {
      const code = c.codes[i]!;
      count[code]!++;
      if (y && y[i] === 1) pos[code]!++;
    }
    const seen: number[] = [];
    for (let j = 0; j < k2; j++) if (count[j]! > 0) seen.push(j);
    // Keep the 254 most frequent; the rest share one bin.
    seen.sort((a, b) => count[b]! - count[a]!);
    const kept = seen.slice(0, 254);
    const rate = (j: number): number => (pos[j]! + 0.5) / (count[j]! + 1); // smoothed
    if (y) kept.sort((a, b) => rate(a) - rate(b));
    const codeToBin = new Int32Array(k2).fill(kept.length);
    kept.forEach((code, b) => (codeToBin[code] = b));
    return { name: c.name, kind: 'categorical', codeToBin, unseenBin: kept.length };
  });
  return { features };
}

/** Row-major binned matrix (n x nFeatures, one byte per cell). */
export interface Binned {
  n: number;
  nFeatures: number;
  bins: Uint8Array;
}

/** Applies a binner to a table with the same columns in the same order. */
export function applyBinner(binner: Binner, table: Table): Binned {
  const F = binner.features.length;
  if (table.columns.length !== F) {
    throw new Error(`applyBinner: table has ${table.columns.length} columns, binner expects ${F}`);
  }
  const n = table.nRows;
  const bins = new Uint8Array(n * F);
  binner.features.forEach((fb, f) => {
    const c = table.columns[f]!;
    if (c.name !== fb.name) throw new Error(`applyBinner: column ${f} is "${c.name}", expected "${fb.name}"`);
    if (fb.kind === 'numeric' && c.kind === 'numeric') {
      const t = fb.thresholds!;
      const m = t.length;
      for (let i = 0; i < n; i++) {
        const x = c.values[i]!;
        let b: number;
        if (Number.isNaN(x)) b = MISSING_BIN;
        else {
          let lo = 0;
          let hi = m;
          while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (x <= t[mid]!) hi = mid;
            else lo = mid + 1;
          }
          b = lo;
        }
        bins[i * F + f] = b;
      }
    } else if (fb.kind === 'categorical' && c.kind === 'categorical') {
      const map = fb.codeToBin!;
      for (let i = 0; i < n; i++) {
        const code = c.codes[i]!;
        bins[i * F + f] = code < map.length ? map[code]! : fb.unseenBin!;
      }
    } else throw new Error(`applyBinner: column "${c.name}" kind changed`);
  });
  return { n, nFeatures: F, bins };
}

export interface GbdtOptions {
  /** Boosting rounds (trees), default 200. */
  maxIter?: number;
  learningRate?: number;
  /** Leaves per tree (leaf-wise growth), default 31. */
  maxLeafNodes?: number;
  maxDepth?: number;
  minSamplesLeaf?: number;
  /** L2 penalty lambda on leaf values, default 1. */
  l2?: number;
  minHessianLeaf?: number;
  /** Early stopping: 'auto' (on when n > 10000, like sklearn), true or false. */
  earlyStopping?: boolean | 'auto';
  validationFraction?: number;
  nIterNoChange?: number;
  tol?: number;
  seed?: number;
  /** Called after each round (progress reporting). */
  onIter?: (iter: number, maxIter: number) => void;
}

/** Flat tree: internal nodes have feature >= 0; leaves have feature = -1 and a value. */
export interface Tree {
  feature: Int32Array;
  threshold: Uint8Array;
  left: Int32Array;
  right: Int32Array;
  value: Float64Array;
}

export interface GbdtModel {
  binner: Binner;
  baseScore: number;
  trees: Tree[];
  /** Rounds kept (best validation iteration when early stopping). */
  nIter: number;
  /** Raw log-odds for a table with the training columns. */
  decisionFunction(table: Table): Float64Array;
  /** P(y = 1) for a table with the training columns. */
  predictProba(table: Table): Float64Array;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

interface Leaf {
  node: number;
  start: number;
  end: number;
  depth: number;
  hist: Float64Array; // NB * F * 3: grad, hess, count
  g: number;
  h: number;
  bestGain: number;
  bestFeature: number;
  bestBin: number;
}

/** Checks 0/1 labels. */
function checkLabels(y: Uint8Array, n: number): void {
  if (y.length !== n) throw new Error(`trainGbdt: ${n} rows but ${y.length} labels`);
  for (let i = 0; i < y.length; i++) if (y[i] !== 0 && y[i] !== 1) throw new Error(`trainGbdt: label ${y[i]} at row ${i} is not 0/1`);
}

/** Trains a binary GBDT on `table` (every column a feature) with 0/1 labels `y`. */
export function trainGbdt(table: Table, y: Uint8Array, opts: GbdtOptions = {}): GbdtModel {
  checkLabels(y, table.nRows);
  if (table.nRows === 0) throw new Error('trainGbdt: no training rows');
  const binner = fitBinner(table, y);
  const X = applyBinner(binner, table);
  const { trees, baseScore, nIter } = trainGbdtBinned(X, y, opts);
  const decisionFunction = (t: Table): Float64Array => predictRaw(trees, baseScore, applyBinner(binner, t));
  return {
    binner,
    baseScore,
    trees,
    nIter,
    decisionFunction,
    predictProba: (t) => decisionFunction(t).map(sigmoid),
  };
}

/** Raw scores of binned data. */
export function predictRaw(trees: Tree[], baseScore: number, X: Binned): Float64Array {
  const out = new Float64Array(X.n).fill(baseScore);
  for (const t of trees) addTree(t, X, out, 1);
  return out;
}

function addTree(t: Tree, X: Binned, out: Float64Array, scale: number): void {
  const F = X.nFeatures;
  const B = X.bins;
  for (let i = 0; i < X.n; i++) {
    let node = 0;
    const base = i * F;
    while (t.feature[node]! >= 0) {
      node = B[base + t.feature[node]!]! <= t.threshold[node]! ? t.left[node]! : t.right[node]!;
    }
    out[i]! += scale * t.value[node]!;
  }
}

/** Boosting on pre-binned data. Early stopping uses a stratified split of these (training) rows. */
export function trainGbdtBinned(X: Binned, y: Uint8Array, opts: GbdtOptions = {}): { trees: Tree[]; baseScore: number; nIter: number } {
  const maxIter = opts.maxIter ?? 200;
  const lr = opts.learningRate ?? 0.1;
  const maxLeaves = Math.max(2, opts.maxLeafNodes ?? 31);
  const maxDepth = opts.maxDepth ?? Infinity;
  const minLeaf = Math.max(1, opts.minSamplesLeaf ?? 20);
  const lambda = opts.l2 ?? 1;
  const minHess = opts.minHessianLeaf ?? 1e-3;
  const es = opts.earlyStopping ?? 'auto';
  const useEs = es === 'auto' ? X.n > 10_000 : es;
  const patience = opts.nIterNoChange ?? 10;
  const tol = opts.tol ?? 1e-7;
  const F = X.nFeatures;

  // Training / validation rows.
  let trainIdx: Int32Array;
  let valIdx: Int32Array = new Int32Array(0);
  if (useEs) {
    const s = stratifiedSplit(y, opts.validationFraction ?? 0.1, opts.seed ?? 17);
    trainIdx = s.a;
    valIdx = s.b;
  } else trainIdx = Int32Array.from({ length: X.n }, (_, i) => i);
  const n = trainIdx.length;
  if (n === 0) throw new Error('trainGbdt: no training rows left after the validation split');

  let pos = 0;
  for (const i of trainIdx) pos += y[i]!;
  const p0 = Math.min(1 - 1e-6, Math.max(1e-6, pos / n));
  const baseScore = Math.log(p0 / (1 - p0));

  // Compact the training rows into their own row-major block for cache-friendly histograms.
  const TB = new Uint8Array(n * F);
  const ty = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const i = trainIdx[r]!;
    TB.set(X.bins.subarray(i * F, i * F + F), r * F);
    ty[r] = y[i]!;
  }
  const V: Binned = { n: valIdx.length, nFeatures: F, bins: new Uint8Array(valIdx.length * F) };
  const vy = new Uint8Array(valIdx.length);
  valIdx.forEach((i, r) => {
    V.bins.set(X.bins.subarray(i * F, i * F + F), r * F);
    vy[r] = y[i]!;
  });

  const raw = new Float64Array(n).fill(baseScore);
  const vraw = new Float64Array(V.n).fill(baseScore);
  const g = new Float64Array(n);
  const h = new Float64Array(n);
  const rows = new Int32Array(n);
  const trees: Tree[] = [];
  let bestLoss = Infinity;
  let bestIter = 0;
  const valLoss = (): number => {
    let s = 0;
    for (let i = 0; i < V.n; i++) {
      const z = vraw[i]!;
      // log(1 + e^z) - y z, stable
      s += (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z))) - vy[i]! * z;
    }
    return s / Math.max(1, V.n);
  };

  for (let iter = 0; iter < maxIter; iter++) {
    for (let i = 0; i < n; i++) {
      const p = sigmoid(raw[i]!);
      g[i] = p - ty[i]!;
      h[i] = Math.max(p * (1 - p), 1e-16);
      rows[i] = i;
    }
    const tree = growTree(TB, F, g, h, rows, { maxLeaves, maxDepth, minLeaf, lambda, minHess, lr }, raw);
    trees.push(tree);
    if (useEs) {
      addTree(tree, V, vraw, 1);
      const l = valLoss();
      if (l < bestLoss - tol) {
        bestLoss = l;
        bestIter = iter + 1;
      } else if (iter + 1 - bestIter >= patience) break;
    } else bestIter = iter + 1;
    opts.onIter?.(iter + 1, maxIter);
    if (tree.feature[0]! < 0) break; // a stump that cannot split: nothing left to learn
  }
  return { trees: trees.slice(0, Math.max(1, bestIter)), baseScore, nIter: Math.max(1, bestIter) };
}

interface GrowOpts {
  maxLeaves: number;
  maxDepth: number;
  minLeaf: number;
  lambda: number;
  minHess: number;
  lr: number;
}

function buildHist(B: Uint8Array, F: number, g: Float64Array, h: Float64Array, rows: Int32Array, start: number, end: number): Float64Array {
  const hist = new Float64Array(NB * F * 3);
  for (let k = start; k < end; k++) {
    const r = rows[k]!;
    const gi = g[r]!;
    const hi = h[r]!;
    const base = r * F;
    for (let f = 0; f < F; f++) {
      const o = (f * NB + B[base + f]!) * 3;
      hist[o]! += gi;
      hist[o + 1]! += hi;
      hist[o + 2]!++;
    }
  }
  return hist;
}

function findSplit(leaf: Leaf, F: number, o: GrowOpts): void {
  const { lambda, minLeaf, minHess } = o;
  const G = leaf.g;
  const H = leaf.h;
  const N = leaf.end - leaf.start;
  const parentScore = (G * G) / (H + lambda);
  leaf.bestGain = 0;
  leaf.bestFeature = -1;
  if (N < 2 * minLeaf || leaf.depth >= o.maxDepth) return;
  const hist = leaf.hist;
  for (let f = 0; f < F; f++) {
    let gl = 0;
    let hl = 0;
    let nl = 0;
    const fo = f * NB * 3;
    for (let b = 0; b < NB - 1; b++) {
      const q = fo + b * 3;
      const c = hist[q + 2]!;
      if (c === 0) continue;
      gl += hist[q]!;
      hl += hist[q + 1]!;
      nl += c;
      const nr = N - nl;
      if (nr < minLeaf) break;
      if (nl < minLeaf) continue;
      const hr = H - hl;
      if (hl < minHess || hr < minHess) continue;
      const gr = G - gl;
      const gain = (gl * gl) / (hl + lambda) + (gr * gr) / (hr + lambda) - parentScore;
      if (gain > leaf.bestGain + 1e-12) {
        leaf.bestGain = gain;
        leaf.bestFeature = f;
        leaf.bestBin = b;
      }
    }
  }
}

function growTree(B: Uint8Array, F: number, g: Float64Array, h: Float64Array, rows: Int32Array, o: GrowOpts, raw: Float64Array): Tree {
  const feature: number[] = [-1];
  const threshold: number[] = [0];
  const left: number[] = [-1];
  const right: number[] = [-1];
  const value: number[] = [0];
  const n = rows.length;
  const rootHist = buildHist(B, F, g, h, rows, 0, n);
  let G = 0;
  let H = 0;
  for (let i = 0; i < n; i++) {
    G += g[i]!;
    H += h[i]!;
  }
  const root: Leaf = { node: 0, start: 0, end: n, depth: 0, hist: rootHist, g: G, h: H, bestGain: 0, bestFeature: -1, bestBin: 0 };
  findSplit(root, F, o);
  const open: Leaf[] = [root];
  const done: Leaf[] = [];
  let nLeaves = 1;
  while (nLeaves < o.maxLeaves) {
    // Best-first: split the open leaf with the largest gain.
    let bi = -1;
    for (let i = 0; i < open.length; i++) if (open[i]!.bestFeature >= 0 && (bi < 0 || open[i]!.bestGain > open[bi]!.bestGain)) bi = i;
    if (bi < 0) break;
    const leaf = open.splice(bi, 1)[0]!;
    const f = leaf.bestFeature;
    const t = leaf.bestBin;
    // Partition rows[start, end) in place: bin <= t to the left.
    let i = leaf.start;
    let j = leaf.end - 1;
    while (i <= j) {
      if (B[rows[i]! * F + f]! <= t) i++;
      else {
        const tmp = rows[i]!;
        rows[i] = rows[j]!;
        rows[j] = tmp;
        j--;
      }
    }
    const mid = i;
    let gl = 0;
    let hl = 0;
    const fo = f * NB * 3;
    for (let b = 0; b <= t; b++) {
      gl += leaf.hist[fo + b * 3]!;
      hl += leaf.hist[fo + b * 3 + 1]!;
    }
    const ln = feature.length;
    feature.push(-1, -1);
    threshold.push(0, 0);
    left.push(-1, -1);
    right.push(-1, -1);
    value.push(0, 0);
    feature[leaf.node] = f;
    threshold[leaf.node] = t;
    left[leaf.node] = ln;
    right[leaf.node] = ln + 1;
    const L: Leaf = { node: ln, start: leaf.start, end: mid, depth: leaf.depth + 1, hist: leaf.hist, g: gl, h: hl, bestGain: 0, bestFeature: -1, bestBin: 0 };
    const R: Leaf = { node: ln + 1, start: mid, end: leaf.end, depth: leaf.depth + 1, hist: leaf.hist, g: leaf.g - gl, h: leaf.h - hl, bestGain: 0, bestFeature: -1, bestBin: 0 };
    // Subtraction trick: histogram the smaller child, derive the larger one from the parent.
    const small = L.end - L.start <= R.end - R.start ? L : R;
    const large = small === L ? R : L;
    small.hist = buildHist(B, F, g, h, rows, small.start, small.end);
    const lh = leaf.hist; // reuse the parent's buffer for the larger child
    const sh = small.hist;
    for (let k = 0; k < lh.length; k++) lh[k]! -= sh[k]!;
    large.hist = lh;
    nLeaves++;
    findSplit(L, F, o);
    findSplit(R, F, o);
    open.push(L, R);
  }
  for (const l of open) done.push(l);
  for (const l of done) {
    const v = (-l.g / (l.h + o.lambda)) * o.lr;
    value[l.node] = v;
    for (let k = l.start; k < l.end; k++) raw[rows[k]!]! += v;
  }
  return {
    feature: Int32Array.from(feature),
    threshold: Uint8Array.from(threshold),
    left: Int32Array.from(left),
    right: Int32Array.from(right),
    value: Float64Array.from(value),
  };
}
