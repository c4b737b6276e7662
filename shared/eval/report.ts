// The evaluation report: a composition of the fidelity, utility and privacy metrics on columnar
// tables. Keys listed in REPORT_CONTRACT_KEYS are a stable contract (shared/eval/README.md).
import type { Column, ColumnSpec, Metadata, Table } from './table';
import { concatTables, takeRows } from './table';
import { columnJsDistance, columnPairs, columnShape, mmdRbf, type PairResult } from './fidelity';
import { permutation, quantileSorted, rng, sampleIndices, sortedFinite, stratifiedSplit } from './random';
import { aucRoc, rocCurve } from './auc';
import { trainGbdt } from './gbdt';
import { applyDesign, fitDesign } from './logistic';
import { privacyMetrics, type PrivacyReport } from './privacy';
import { utilityMetrics, type UtilityReport, type UtilityOptions } from './utility';

export const REPORT_VERSION = 1;

/** Dotted paths that every report has (utility ones only when a target is given), all in [0, 1]. */
export const REPORT_CONTRACT_KEYS = [
  'fidelity.columnShapes',
  'fidelity.columnPairs',
  'fidelity.detectionAuc',
  'privacy.exactCopyRate',
  'privacy.dcr.shareCloserToTrain',
  'privacy.mia.distanceAuc',
  'privacy.mia.densityAuc',
] as const;
export const UTILITY_CONTRACT_KEYS = ['gbdt', 'logistic'].flatMap((m) =>
  ['tstr', 'trtr'].flatMap((s) => ['auc', 'prAuc', 'recall', 'precision'].map((k) => `utility.${m}.${s}.${k}`)),
);

export interface EvaluateInput {
  real: Table;
  holdout: Table;
  synthetic: Table;
  metadata: Metadata;
}

export interface EvaluateOptions {
  seed?: number;
  /** Rows sampled per query set for DCR/NNDR (MIA: half members, half non-members); default privacy.ts defaultQuerySample. */
  privacyQuerySample?: number;
  /** Rows per side for the detection classifier (default 10000). */
  detectionSample?: number;
  /** Rows per side for MMD (default 1000; O(n^2)). */
  mmdSample?: number;
  threads?: number;
  utility?: Pick<UtilityOptions, 'gbdt' | 'positiveClass'>;
  /** Progress: a step name and the share of the pipeline done. */
  onProgress?: (step: string, done: number) => void;
}

export interface ColumnFidelity {
  name: string;
  kind: 'numeric' | 'categorical';
  metric: 'KSComplement' | 'TVComplement';
  shape: number;
  jsDistance: number;
}

export interface ColumnPlot {
  name: string;
  kind: 'numeric' | 'categorical';
  /** Bin labels (numeric: bin lower edges; categorical: category names, "(other)" last). */
  labels: string[];
  real: number[];
  synthetic: number[];
}

export interface Report {
  version: number;
  generatedAt: string;
  inputs: {
    realRows: number;
    holdoutRows: number;
    syntheticRows: number;
    columns: ColumnSpec[];
    excluded: string[];
    target: string | null;
  };
  fidelity: {
    columnShapes: number;
    columnPairs: number;
    detectionAuc: number;
    /** 1 - 2 max(0, AUC - 0.5): 1 = indistinguishable. */
    detectionScore: number;
    meanJsDistance: number;
    mmdRbf: number;
    columns: ColumnFidelity[];
    pairs: PairResult[];
    sampling: { detectionRowsPerSide: number; detectionFolds: number; mmdRowsPerSide: number; pairRowsMax: number; seed: number };
  };
  utility: Omit<UtilityReport, 'plots'> | null;
  privacy: Omit<PrivacyReport, 'plots'>;
  plots: {
    columns: ColumnPlot[];
    utilityRoc: UtilityReport['plots']['roc'];
    detectionRoc: { fpr: number[]; tpr: number[] };
    dcrSynthetic: number[];
    dcrHoldout: number[];
    miaDistanceRoc: { fpr: number[]; tpr: number[] };
    miaDensityRoc: { fpr: number[]; tpr: number[] };
  };
  timings: Record<string, number>;
  warnings: string[];
}

function checkAligned(meta: Metadata, tables: Record<string, Table>): void {
  for (const [what, t] of Object.entries(tables)) {
    if (t.columns.length !== meta.columns.length) {
      throw new Error(`${what}: ${t.columns.length} columns, metadata has ${meta.columns.length}`);
    }
    meta.columns.forEach((c, k) => {
      const tc = t.columns[k]!;
      if (tc.name !== c.name || tc.kind !== c.kind) throw new Error(`${what}: column ${k} is "${tc.name}" (${tc.kind}), expected "${c.name}" (${c.kind})`);
    });
    if (t.nRows === 0) throw new Error(`${what}: no rows`);
  }
}

/** Cross-validated AUC of a GBDT telling real (0) from synthetic (1) on fixed-seed samples. */
export function detectionAuc(real: Table, synthetic: Table, perSide = 10_000, folds = 3, seed = 11): { auc: number; roc: { fpr: number[]; tpr: number[] } } {
  const r = takeRows(real, sampleIndices(real.nRows, perSide, seed));
  const s = takeRows(synthetic, sampleIndices(synthetic.nRows, perSide, seed + 1));
  const all = concatTables(r, s);
  const y = new Uint8Array(all.nRows);
  y.fill(1, r.nRows);
  const oof = new Float64Array(all.nRows);
  const perm = permutation(all.nRows, rng(seed + 2));
  for (let f = 0; f < folds; f++) {
    const test: number[] = [];
    const train: number[] = [];
    for (let i = 0; i < perm.length; i++) (i % folds === f ? test : train).push(perm[i]!);
    const m = trainGbdt(takeRows(all, train), Uint8Array.from(train, (i) => y[i]!), { maxIter: 100, seed: seed + f });
    const p = m.predictProba(takeRows(all, test));
    test.forEach((i, k) => (oof[i] = p[k]!));
  }
  return { auc: aucRoc(oof, y), roc: rocCurve(oof, y, 150) };
}

/** Histogram overlay data for one column. */
export function columnPlot(real: Column, syn: Column): ColumnPlot {
  if (real.kind === 'numeric' && syn.kind === 'numeric') {
    const s = sortedFinite(real.values);
    const lo = quantileSorted(s, 0.005);
    const hi = quantileSorted(s, 0.995);
    const bins = 30;
    const w = hi > lo ? (hi - lo) / bins : 1;
    const hist = (v: Float64Array): number[] => {
      const h = new Array<number>(bins).fill(0);
      let n = 0;
      for (let i = 0; i < v.length; i++) {
        const x = v[i]!;
        if (Number.isNaN(x)) continue;
        n++;
        const b = Math.min(bins - 1, Math.max(0, Math.floor((x - lo) / w)));
        h[b]!++;
      }
      return h.map((c) => c / (n || 1));
    };
    return {
      name: real.name,
      kind: 'numeric',
      labels: Array.from({ length: bins }, (_, b) => fmt(lo + b * w)),
      real: hist(real.values),
      synthetic: hist(syn.values),
    };
  }
  if (real.kind !== 'categorical' || syn.kind !== 'categorical') throw new Error(`column "${real.name}": kinds differ`);
  const k = real.categories.length;
  const fr = new Float64Array(k);
  const fs = new Float64Array(k);
  for (let i = 0; i < real.codes.length; i++) fr[real.codes[i]!]!++;
  for (let i = 0; i < syn.codes.length; i++) fs[syn.codes[i]!]!++;
  const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => fr[b]! - fr[a]! || fs[b]! - fs[a]!);
  const top = order.slice(0, 15);
  const nr = real.codes.length || 1;
  const ns = syn.codes.length || 1;
  const labels = top.map((c) => real.categories[c]!);
  const rv = top.map((c) => fr[c]! / nr);
  const sv = top.map((c) => fs[c]! / ns);
  if (order.length > top.length) {
    labels.push('(other)');
    rv.push(1 - rv.reduce((a, b) => a + b, 0));
    sv.push(1 - sv.reduce((a, b) => a + b, 0));
  }
  return { name: real.name, kind: 'categorical', labels, real: rv, synthetic: sv };
}

function fmt(x: number): string {
  return Math.abs(x) >= 1e5 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : String(Math.round(x * 1000) / 1000);
}

function mean(a: number[]): number {
  return a.length ? a.reduce((s, x) => s + x, 0) / a.length : Number.NaN;
}

/** Runs every metric and returns the report (no I/O). */
export async function evaluate(input: EvaluateInput, opts: EvaluateOptions = {}): Promise<Report> {
  const { real, holdout, synthetic, metadata } = input;
  checkAligned(metadata, { real, holdout, synthetic });
  const seed = opts.seed ?? 42;
  const progress = opts.onProgress ?? (() => {});
  const timings: Record<string, number> = {};
  const warnings: string[] = [];
  let t0 = performance.now();
  const lap = (k: string): void => {
    const t = performance.now();
    timings[k] = Math.round(t - t0) / 1000;
    t0 = t;
  };

  progress('column shapes', 0.02);
  const columns: ColumnFidelity[] = real.columns.map((c, k) => ({
    name: c.name,
    kind: c.kind,
    metric: c.kind === 'numeric' ? 'KSComplement' : 'TVComplement',
    shape: columnShape(c, synthetic.columns[k]!),
    jsDistance: columnJsDistance(c, synthetic.columns[k]!),
  }));
  const plotsColumns = real.columns.map((c, k) => columnPlot(c, synthetic.columns[k]!));
  lap('columnShapes');

  progress('column pairs', 0.08);
  const pairRowsMax = 50_000;
  const pairs = real.columns.length > 1 ? columnPairs(real, synthetic, pairRowsMax, seed) : [];
  if (pairs.length === 0) warnings.push('only one column: no column pairs to compare');
  lap('columnPairs');

  progress('MMD', 0.12);
  const mmdN = opts.mmdSample ?? 1000;
  const design = fitDesign(real);
  const toF32 = (t: Table, n: number, s: number): { x: Float32Array; n: number } => {
    const sub = takeRows(t, sampleIndices(t.nRows, n, s));
    return { x: Float32Array.from(applyDesign(design, sub)), n: sub.nRows };
  };
  const mr = toF32(real, mmdN, seed + 20);
  const ms = toF32(synthetic, mmdN, seed + 21);
  const mmd = mmdRbf(mr.x, mr.n, ms.x, ms.n, design.dim).mmd2;
  lap('mmd');

  progress('detection classifier', 0.16);
  const detPerSide = opts.detectionSample ?? 10_000;
  const det = detectionAuc(real, synthetic, detPerSide, 3, seed + 30);
  lap('detection');

  let utility: UtilityReport | null = null;
  if (metadata.target) {
    progress('utility (TSTR / TRTR)', 0.3);
    utility = utilityMetrics(real, holdout, synthetic, metadata.target, {
      seed,
      gbdt: opts.utility?.gbdt,
      ...(opts.utility?.positiveClass !== undefined ? { positiveClass: opts.utility.positiveClass } : {}),
      onProgress: (s) => progress(`utility: ${s}`, 0.35),
    });
    warnings.push(...utility.warnings);
    lap('utility');
  }

  progress('privacy (DCR, NNDR, MIA)', 0.6);
  const privacy = await privacyMetrics(real, holdout, synthetic, {
    querySample: opts.privacyQuerySample,
    seed,
    threads: opts.threads,
    onProgress: (s) => progress(`privacy: ${s}`, 0.7),
  });
  lap('privacy');
  progress('done', 1);

  const { plots: uPlots, ...utilityRest } = utility ?? { plots: { roc: {} } };
  const { plots: pPlots, ...privacyRest } = privacy;
  return {
    version: REPORT_VERSION,
    generatedAt: new Date().toISOString(),
    inputs: {
      realRows: real.nRows,
      holdoutRows: holdout.nRows,
      syntheticRows: synthetic.nRows,
      columns: metadata.columns,
      excluded: metadata.excluded,
      target: metadata.target ?? null,
    },
    fidelity: {
      columnShapes: mean(columns.map((c) => c.shape)),
      columnPairs: pairs.length ? mean(pairs.map((p) => p.score)) : 1,
      detectionAuc: det.auc,
      detectionScore: 1 - 2 * Math.max(0, det.auc - 0.5),
      meanJsDistance: mean(columns.map((c) => c.jsDistance)),
      mmdRbf: mmd,
      columns,
      pairs,
      sampling: { detectionRowsPerSide: Math.min(detPerSide, real.nRows, synthetic.nRows), detectionFolds: 3, mmdRowsPerSide: mmdN, pairRowsMax, seed },
    },
    utility: utility ? (utilityRest as Omit<UtilityReport, 'plots'>) : null,
    privacy: privacyRest,
    plots: {
      columns: plotsColumns,
      utilityRoc: uPlots.roc,
      detectionRoc: det.roc,
      dcrSynthetic: pPlots.dcrSynthetic,
      dcrHoldout: pPlots.dcrHoldout,
      miaDistanceRoc: pPlots.miaDistanceRoc,
      miaDensityRoc: pPlots.miaDensityRoc,
    },
    timings,
    warnings,
  };
}

/** Value at a dotted path of a report (undefined when absent). */
export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const k of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** Stratified split helper for callers that only have one real table (e.g. benchmarks). */
export function splitTable(t: Table, labels: Uint8Array | Int32Array, holdoutFraction: number, seed = 42): { train: Table; holdout: Table } {
  const { a, b } = stratifiedSplit(labels, holdoutFraction, seed);
  return { train: takeRows(t, a), holdout: takeRows(t, b) };
}
