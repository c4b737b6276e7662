// CTGAN's mode-specific normalisation (Xu et al. 2019, §4.2), fitted privately across banks.
//
// Continuous, integer and datetime columns: a Gaussian mixture (≤ maxModes modes, tiny modes
// pruned) over the column's value on its declared scale; a value is encoded as one-hot of a mode
// sampled from its posterior plus the scalar α = (u − μ_k)/(4σ_k) clipped to ±0.99 (tanh head).
// Categorical and boolean columns: one-hot. Nullable columns get a missing indicator.
//
// Federated, private fit (Fed-TGAN's idea without raw statistics): no bank sends a mean, a
// variance or a quantile. Each bank releases, once, DP-noised histograms over PUBLIC bin edges
// (derived from the schema's declared bounds and scale only) together with its category counts
// (client-node/dp-summary, charged to its ledger). The coordinator sums the noisy histograms,
// zeroes bins that are indistinguishable from noise (post-processing, free) and fits the mixture
// by deterministic weighted EM on the bin centres. Every bank receives the same fitted state, so
// encodings agree across banks.
//
// Point masses: amounts are often exactly 0 (no payment, a settled bill), and codes sit on a bound
// (days since the last contact, -1 = never). A mixture of Gaussians puts almost none of its mass on
// one exact value, so the sample had no zeros where the real rows have many. A numeric column (whose
// bins are not one per value already) therefore counts apart its rows exactly at 0 (when the declared
// range holds it) and exactly at each declared bound: more counts of the same histogram, where a
// row still adds 1 to one count of the column, so the release's sensitivity is unchanged. Each such
// noisy count that stands out of the noise the fit keeps as a spike: a mode slot of its own (from
// the last one down, reserved by the schema alone), encoded α = 0, decoded to exactly that value.
//
// The output layout (spans) depends on the schema and maxModes only, not on the fit: the model can
// be built when a bank registers, before any summary exists; modes pruned by the fit are slots the
// encoder never uses and the decoder ignores.
import { isDiscrete, isModelled, snapToStep, validateSchema, type ConsortiumSchema, type Row, type SchemaColumn } from '../data/schema';
import type { DataTransformer, DiscreteSpan, OutputSpan } from './types';
import { argmax, categoriesOf } from './encoding';

export const DEFAULT_MAX_MODES = 10;
/** Histogram bins per numeric column (integer columns with a small range get one bin per value). */
export const DEFAULT_BINS = 64;
const MAX_INTEGER_BINS = 100;
/** Modes with less weight than this are pruned (CTGAN's weight threshold). */
const MODE_WEIGHT_THRESHOLD = 0.005;
const ALPHA_CLIP = 0.99;

// ---------------------------------------------------------------- public value scales and bins

/**
 * The value scale a column's mixture lives on. 'log' is asinh(x / s) with s = max(|min|,|max|)/1e4:
 * logarithmic for heavy-tailed amounts, linear near zero, defined for negative values. Declared in
 * the schema (`scale`), so it is public.
 */
export interface Scale {
  to(x: number): number;
  from(u: number): number;
}

export function scaleOf(c: SchemaColumn): Scale {
  if (c.scale === 'log') {
    const s = Math.max(Math.abs(c.min!), Math.abs(c.max!)) / 1e4 || 1;
    return { to: (x) => Math.asinh(x / s), from: (u) => Math.sinh(u) * s };
  }
  return { to: (x) => x, from: (u) => u };
}

/** Bin edges in scale space, from the schema alone (public). */
export function histogramEdges(c: SchemaColumn, bins = DEFAULT_BINS): Float64Array {
  if (c.min === undefined || c.max === undefined) throw new Error(`column '${c.name}' has no declared bounds`);
  if (c.type === 'integer' && c.scale !== 'log' && c.max - c.min + 1 <= MAX_INTEGER_BINS) {
    // One bin per integer value: edges at half-integers.
    const n = c.max - c.min + 1;
    return Float64Array.from({ length: n + 1 }, (_, i) => c.min! - 0.5 + i);
  }
  const sc = scaleOf(c);
  const lo = sc.to(c.min);
  const hi = sc.to(c.max);
  return Float64Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins);
}

/** Index of the bin holding scale-space value u (values at or beyond the ends go to the end bins). */
export function binOf(edges: Float64Array, u: number): number {
  let lo = 0;
  let hi = edges.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (u >= edges[mid]!) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// ---------------------------------------------------------------- the summary a bank releases

export interface SummaryColumn {
  column: string;
  kind: 'categories' | 'histogram';
  /** Number of counts released for this column. */
  dim: number;
}

/**
 * The exact values a numeric column's histogram counts apart (see the header), in slot order: 0 when
 * the declared range holds it, then the declared min and max; none for a column whose bins are one
 * per value already, or a datetime. At most maxModes − 1, so a mixture mode is left. From the schema alone.
 */
export function spikeValuesOf(c: SchemaColumn, maxModes = DEFAULT_MAX_MODES): number[] {
  if (isDiscrete(c) || c.type === 'datetime' || c.min === undefined || c.max === undefined) return [];
  if (c.type === 'integer' && c.scale !== 'log' && c.max - c.min + 1 <= MAX_INTEGER_BINS) return [];
  const values = [...new Set([...(c.min <= 0 && 0 <= c.max ? [0] : []), c.min, c.max])];
  return values.slice(0, Math.max(0, maxModes - 1));
}

/** What every bank summarises (and in which order): fixed by the schema, identical at every bank. */
export function summaryColumns(schema: ConsortiumSchema, bins = DEFAULT_BINS): SummaryColumn[] {
  return schema.columns.filter(isModelled).map((c) => {
    if (isDiscrete(c)) return { column: c.name, kind: 'categories', dim: categoriesOf(c).length + (c.nullable ? 1 : 0) };
    // Histogram bins, one count per spike value, and one count of missing values for a nullable column.
    return { column: c.name, kind: 'histogram', dim: histogramEdges(c, bins).length - 1 + spikeValuesOf(c).length + (c.nullable ? 1 : 0) };
  });
}

/** The raw counts behind the summary. They never leave the bank un-noised (client-node/dp-summary). */
export function summaryCounts(schema: ConsortiumSchema, rows: readonly Row[], bins = DEFAULT_BINS): number[][] {
  const cols = schema.columns.map((c, index) => ({ c, index })).filter(({ c }) => isModelled(c));
  return cols.map(({ c, index }) => {
    if (isDiscrete(c)) {
      const cats = categoriesOf(c);
      const counts = new Array<number>(cats.length + (c.nullable ? 1 : 0)).fill(0);
      for (const r of rows) {
        const v = r[index];
        const j = v === null || v === undefined ? cats.length : cats.indexOf(String(v));
        if (j >= 0 && j < counts.length) counts[j]! += 1;
      }
      return counts;
    }
    const edges = histogramEdges(c, bins);
    const sc = scaleOf(c);
    const nb = edges.length - 1;
    const spikes = spikeValuesOf(c);
    const missingAt = nb + spikes.length;
    const counts = new Array<number>(missingAt + (c.nullable ? 1 : 0)).fill(0);
    for (const r of rows) {
      const v = r[index];
      if (v === null || v === undefined) {
        if (c.nullable) counts[missingAt]! += 1;
        continue;
      }
      // One count per row and column: an exact spike value goes to its own count, not to its bin.
      const x = Number(v);
      const at = spikes.indexOf(x);
      counts[at >= 0 ? nb + at : binOf(edges, sc.to(x))]! += 1;
    }
    return counts;
  });
}


/**
 * Without point masses, the declared bounds at which the inverse reflects a mixture tail back
 * inside rather than clamping it onto the bound: those whose rows would not make a point mass
 * (standsOut), i.e. where the real rows do not pile. The clamp puts every generated value past a
 * bound on exactly the bound (the simulated account tenure: 0.0% of the real rows at its 600-month
 * maximum, 1.9% of a sample). A bound the real rows do pile on (bank-marketing's pdays = -1, 82%;
 * credit-default's smallest credit limit, 1.7%) keeps the clamp, whose pile stands in for the point
 * mass that only --point-masses models. The bound's count is the summary's own (counted apart
 * whether or not point masses are kept): no new release.
 */
export function reflectedBounds(col: SchemaColumn, atBounds: readonly { value: number; count: number }[], noise: number, total: number): number[] {
  return atBounds.filter((a) => (a.value === col.min || a.value === col.max) && !standsOut(a.count, noise, total)).map((a) => a.value);
}

/** x reflected at lo and hi until it lies in [lo, hi] (a triangle wave of period 2·(hi − lo)); x itself when inside. */
export function foldInto(x: number, lo: number, hi: number): number {
  const range = hi - lo;
  if (!(range > 0) || (x >= lo && x <= hi)) return Math.min(hi, Math.max(lo, x));
  const period = 2 * range;
  const t = (((x - lo) % period) + period) % period;
  return lo + (t <= range ? t : period - t);
}

/** A count at one value that the fit would keep as a point mass: out of the noise (3σ, as a lone bin) and a mode's share. */
function standsOut(count: number, noise: number, total: number): boolean {
  return count > 0 && count >= 3 * noise && count >= MODE_WEIGHT_THRESHOLD * total;
}

// ---------------------------------------------------------------- mixture fitting (pure)

export interface Mixture {
  weights: number[];
  means: number[];
  stds: number[];
}

/**
 * The noisy histogram with the bins that look empty set to 0. A bin counts if it is ≥ 3σ, or ≥ 2σ
 * next to another bin ≥ 2σ: real mass comes in runs of bins, noise in isolated ones. With 2σ
 * alone, each empty bin passes with probability 2.3%; over a schema's few hundred bins that is a
 * handful of spurious modes per fit, each ~2σ of rows placed where no real row is (in the demo, 1%
 * of the sampled amounts at 11-17k against a real maximum of 9k). With the run rule an isolated
 * empty bin passes with ≈ 0.13% + 2.1%·4.6% ≈ 0.23%. σ = 0 (no noise): every positive bin counts.
 */
export function occupiedBins(values: readonly number[], sigma: number): number[] {
  if (!(sigma > 0)) return values.map((v) => (v > 0 ? v : 0));
  const over2 = values.map((v) => v >= 2 * sigma);
  return values.map((v, j) => (v >= 3 * sigma || (over2[j] && (over2[j - 1] === true || over2[j + 1] === true)) ? v : 0));
}

/**
 * Deterministic weighted EM for a 1-D Gaussian mixture on histogram bin centres (weights = counts).
 * Each component's variance carries the within-bin variance width²/12 and a floor of (width/2)²,
 * so a mode never collapses onto one bin. Starts from maxModes components at weighted quantiles;
 * components under MODE_WEIGHT_THRESHOLD are pruned and EM continues with the rest.
 */
export function fitMixture(edges: Float64Array, counts: readonly number[], maxModes = DEFAULT_MAX_MODES, iterations = 200): Mixture {
  const nb = edges.length - 1;
  const width = (edges[nb]! - edges[0]!) / nb;
  const centres = Array.from({ length: nb }, (_, b) => (edges[b]! + edges[b + 1]!) / 2);
  const w = Array.from({ length: nb }, (_, b) => Math.max(0, counts[b] ?? 0));
  const total = w.reduce((a, b) => a + b, 0);
  if (!(total > 0)) {
    // Nothing survived the noise: one broad mode over the declared range (public information only).
    return { weights: [1], means: [(edges[0]! + edges[nb]!) / 2], stds: [(edges[nb]! - edges[0]!) / 4] };
  }
  const occupied = w.filter((x) => x > 0).length;
  let k = Math.max(1, Math.min(maxModes, occupied));
  // Initialise at weighted quantiles.
  let means: number[] = [];
  {
    let acc = 0;
    let b = 0;
    for (let j = 0; j < k; j++) {
      const target = ((j + 0.5) / k) * total;
      while (b < nb - 1 && acc + w[b]! < target) acc += w[b++]!;
      means.push(centres[b]!);
    }
  }
  const floor = (width / 2) ** 2;
  let vars = new Array<number>(k).fill(Math.max(floor, ((edges[nb]! - edges[0]!) / (2 * k)) ** 2));
  let pis = new Array<number>(k).fill(1 / k);
  const resp = new Float64Array(nb * maxModes);
  let prevLl = -Infinity;
  for (let it = 0; it < iterations; it++) {
    // E step (log-sum-exp per bin).
    let ll = 0;
    for (let b = 0; b < nb; b++) {
      if (w[b] === 0) continue;
      let m = -Infinity;
      for (let j = 0; j < k; j++) {
        const l = Math.log(pis[j]!) - 0.5 * Math.log(2 * Math.PI * vars[j]!) - ((centres[b]! - means[j]!) ** 2) / (2 * vars[j]!);
        resp[b * maxModes + j] = l;
        if (l > m) m = l;
      }
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.exp(resp[b * maxModes + j]! - m);
      const lse = m + Math.log(s);
      ll += w[b]! * lse;
      for (let j = 0; j < k; j++) resp[b * maxModes + j] = Math.exp(resp[b * maxModes + j]! - lse);
    }
    // M step.
    const nk = new Array<number>(k).fill(0);
    const sx = new Array<number>(k).fill(0);
    for (let b = 0; b < nb; b++) {
      if (w[b] === 0) continue;
      for (let j = 0; j < k; j++) {
        const r = w[b]! * resp[b * maxModes + j]!;
        nk[j]! += r;
        sx[j]! += r * centres[b]!;
      }
    }
    const newMeans = means.map((mu, j) => (nk[j]! > 0 ? sx[j]! / nk[j]! : mu));
    const sxx = new Array<number>(k).fill(0);
    for (let b = 0; b < nb; b++) {
      if (w[b] === 0) continue;
      for (let j = 0; j < k; j++) sxx[j]! += w[b]! * resp[b * maxModes + j]! * (centres[b]! - newMeans[j]!) ** 2;
    }
    means = newMeans;
    vars = vars.map((_, j) => Math.max(floor, (nk[j]! > 0 ? sxx[j]! / nk[j]! : 0) + width ** 2 / 12));
    pis = nk.map((n) => n / total);
    // Prune tiny modes (then keep iterating with the rest).
    const keep = pis.map((p, j) => (p >= MODE_WEIGHT_THRESHOLD ? j : -1)).filter((j) => j >= 0);
    if (keep.length < k) {
      if (keep.length === 0) keep.push(pis.indexOf(Math.max(...pis)));
      means = keep.map((j) => means[j]!);
      vars = keep.map((j) => vars[j]!);
      const s = keep.reduce((a, j) => a + pis[j]!, 0);
      pis = keep.map((j) => pis[j]! / s);
      k = keep.length;
      prevLl = -Infinity;
      continue;
    }
    if (Math.abs(ll - prevLl) <= 1e-8 * Math.abs(ll)) break;
    prevLl = ll;
  }
  // Sort modes by mean so the state reads naturally.
  const order = means.map((_, j) => j).sort((a, b) => means[a]! - means[b]!);
  return { weights: order.map((j) => pis[j]!), means: order.map((j) => means[j]!), stds: order.map((j) => Math.sqrt(vars[j]!)) };
}

// ---------------------------------------------------------------- the transformer

interface NumericState {
  kind: 'numeric';
  column: string;
  mixture: Mixture;
  /** Point masses the fit kept (values from spikeValuesOf), each with its share of the rows; slot maxModes − 1 − (its index there). */
  spikes?: { value: number; weight: number }[];
  /**
   * Without point masses: the bounds (min and/or max) past which the inverse folds a mixture tail
   * back inside instead of clamping it onto the bound (reflectedBounds). Absent: clamp at both, as
   * states written before it.
   */
  reflect?: number[];
}
interface DiscreteState {
  kind: 'discrete';
  column: string;
  /** Rare categories merged into one slot: slot index → the categories it stands for (else absent). */
  merged?: { slot: number; categories: number[] };
}
type ColumnState = NumericState | DiscreteState;

export interface GmmTransformerState {
  kind: 'gmm';
  schema: ConsortiumSchema;
  maxModes: number;
  columns: ColumnState[];
  /**
   * The numeric columns count their spike candidates apart and reserve their mode slots (every
   * state written since point masses exist). Absent in older checkpoints, which still load and
   * sample as they were fitted: no candidates, every slot the mixture's.
   */
  pointMasses?: boolean;
}

interface Plan {
  index: number;
  col: SchemaColumn;
  scale: Scale;
  /** Offset of the tanh scalar (numeric) or the one-hot block (discrete). */
  offset: number;
  /** Numeric: offset of the mode one-hot (maxModes wide). */
  modeOffset: number;
  /** Nullable numeric: offset of [present, missing]. */
  missingOffset: number;
  categories: string[];
  state?: ColumnState;
  /** Discrete: category index → slot (rare categories share one). */
  slotOf?: Int32Array;
  /** Numeric: spike candidate value → its mode slot (spikeValuesOf order, from the last slot down). */
  spikeSlots?: Map<number, number>;
  /** Numeric: whether the inverse folds a tail past the min / the max back inside instead of clamping it. */
  reflectMin?: boolean;
  reflectMax?: boolean;
}

export interface FitOptions {
  maxModes?: number;
  bins?: number;
  /**
   * Std of the noise in the merged counts (√Σ σ_bank²), one for all columns or one per summary
   * column: bins that look empty are dropped (occupiedBins).
   */
  noiseStd?: number | readonly number[];
  /** Merge categories whose merged noisy count is below this into one slot (default 3·the column's noiseStd). */
  rareThreshold?: number;
  /**
   * Keep point masses (see the header). Default false: the candidates' counts go back to their bins,
   * as before point masses. Off by default because, in bench:privacy, bank-marketing's minority
   * recall at the F1-best threshold was lower with them in most runs (BENCHMARKS.md, sixth
   * session), while PR-AUC did not move; the coordinator's --point-masses turns them on.
   */
  pointMasses?: boolean;
}

/**
 * The consortium's category weights for a fitted transformer, from the merged noisy counts summed
 * WITHOUT clamping (`rawSums`, summaryColumns order). A column whose rare categories the fit
 * merged into one slot gets max(0, Σ their noisy counts) on the slot and 0 on the others: the sum of
 * the noise has mean 0, so the slot's weight is unbiased. Clamping each rare category at 0 first
 * kept its positive noise only (about 0.4 noise sds each, every category), and the slot, which
 * stands for all of them, came out several times too large (credit-default's PAY_2 '8': 0.00% of
 * the real rows, 1.08% of a sample, in one consortium run). Every other count is clamped at 0 as before.
 * Post-processing of the released counts.
 */
export function pooledCategoryWeights(state: GmmTransformerState, rawSums: readonly { column: string; values: readonly number[] }[]): { column: string; values: number[] }[] {
  const byColumn = new Map((state.columns ?? []).map((c) => [c.column, c]));
  return rawSums.map(({ column, values }) => {
    const out = values.map((v) => Math.max(0, v));
    const st = byColumn.get(column);
    if (st?.kind === 'discrete' && st.merged) {
      let sum = 0;
      for (const j of st.merged.categories) {
        sum += values[j] ?? 0;
        out[j] = 0;
      }
      out[st.merged.slot] = Math.max(0, sum);
    }
    return { column, values: out };
  });
}

export class GmmTransformer implements DataTransformer {
  readonly kind = 'gmm';
  readonly spans: OutputSpan[] = [];
  readonly outputDim: number;
  private readonly plans: Plan[] = [];

  private constructor(
    readonly schema: ConsortiumSchema,
    readonly maxModes: number,
    readonly columnStates: ColumnState[] | undefined,
    /** GmmTransformerState.pointMasses. */
    readonly pointMasses = false,
  ) {
    let offset = 0;
    let si = 0;
    schema.columns.forEach((col, index) => {
      if (!isModelled(col)) return;
      const state = columnStates?.[si++];
      if (state && state.column !== col.name) throw new Error(`transformer state column '${state.column}' does not match schema column '${col.name}'`);
      const plan: Plan = { index, col, scale: scaleOf(col), offset, modeOffset: -1, missingOffset: -1, categories: [], state };
      if (isDiscrete(col)) {
        plan.categories = categoriesOf(col);
        const dim = plan.categories.length + (col.nullable ? 1 : 0);
        this.spans.push({ column: col.name, kind: 'softmax', dim, offset });
        offset += dim;
        const slotOf = Int32Array.from({ length: plan.categories.length }, (_, j) => j);
        if (state?.kind === 'discrete' && state.merged) for (const j of state.merged.categories) slotOf[j] = state.merged.slot;
        plan.slotOf = slotOf;
      } else {
        this.spans.push({ column: col.name, kind: 'tanh', dim: 1, offset });
        plan.modeOffset = offset + 1;
        this.spans.push({ column: col.name, kind: 'softmax', dim: maxModes, offset: offset + 1 });
        offset += 1 + maxModes;
        if (col.nullable) {
          plan.missingOffset = offset;
          this.spans.push({ column: col.name, kind: 'softmax', dim: 2, offset });
          offset += 2;
        }
        if (state && state.kind !== 'numeric') throw new Error(`transformer state for '${col.name}' is not numeric`);
        const candidates = pointMasses ? spikeValuesOf(col, maxModes) : [];
        if (state && state.mixture.means.length > maxModes - candidates.length) throw new Error(`transformer state for '${col.name}' has more than ${maxModes - candidates.length} modes`);
        for (const sp of state?.spikes ?? []) {
          if (!candidates.includes(sp.value)) throw new Error(`transformer state for '${col.name}' has a spike at ${sp.value}, which its schema column does not count apart`);
        }
        plan.spikeSlots = new Map(candidates.map((v, i) => [v, maxModes - 1 - i]));
        // With point masses, rows exactly at a bound are the spike's: every bound reflects. Without,
        // the bounds the fit found the real rows do not pile on (reflectedBounds).
        plan.reflectMin = candidates.length > 0 || (state?.reflect?.includes(col.min!) ?? false);
        plan.reflectMax = candidates.length > 0 || (state?.reflect?.includes(col.max!) ?? false);
      }
      this.plans.push(plan);
    });
    this.outputDim = offset;
    if (this.outputDim === 0) throw new Error('the schema has no modelled columns');
  }

  /** The layout only (no fitted state): enough to build the model; cannot transform yet. */
  static layout(schema: ConsortiumSchema, maxModes = DEFAULT_MAX_MODES): GmmTransformer {
    return new GmmTransformer(schema, maxModes, undefined);
  }

  /**
   * Fits the transformer from the merged DP-noised summary (summaryColumns order). Only noisy
   * counts and the schema are read: the result is post-processing of DP releases.
   */
  static fit(schema: ConsortiumSchema, merged: readonly { column: string; values: readonly number[] }[], opts: FitOptions = {}): GmmTransformer {
    const maxModes = opts.maxModes ?? DEFAULT_MAX_MODES;
    const bins = opts.bins ?? DEFAULT_BINS;
    const expected = summaryColumns(schema, bins);
    if (merged.length !== expected.length) throw new Error(`summary has ${merged.length} columns, the schema summarises ${expected.length}`);
    const n = opts.noiseStd ?? 0;
    if (typeof n !== 'number' && n.length !== expected.length) throw new Error(`noiseStd has ${n.length} entries, the schema summarises ${expected.length} columns`);
    const noiseOf = (k: number): number => (typeof n === 'number' ? n : n[k]!);
    const states: ColumnState[] = [];
    const modelled = schema.columns.filter(isModelled);
    modelled.forEach((col, k) => {
      const m = merged[k]!;
      const e = expected[k]!;
      if (m.column !== e.column || m.values.length !== e.dim) throw new Error(`summary column ${k} is '${m.column}' with ${m.values.length} counts, expected '${e.column}' with ${e.dim}`);
      const noise = noiseOf(k);
      const rare = opts.rareThreshold ?? 3 * noise;
      if (isDiscrete(col)) {
        const st: DiscreteState = { kind: 'discrete', column: col.name };
        const cats = categoriesOf(col);
        // Merge rare categories (noisy count below threshold) of a categorical, non-target column
        // into one slot, so the model never has to learn (and could never leak) them one by one.
        if (col.type === 'categorical' && col.role !== 'target' && schema.target !== col.name && rare > 0) {
          const rareIdx = cats.map((_, j) => j).filter((j) => (m.values[j] ?? 0) < rare);
          if (rareIdx.length >= 2 && rareIdx.length < cats.length) st.merged = { slot: rareIdx[0]!, categories: rareIdx };
        }
        states.push(st);
      } else {
        const edges = histogramEdges(col, bins);
        const nb = edges.length - 1;
        // The summary always counts the candidates apart (summaryColumns); each is kept as a point
        // mass (only with opts.pointMasses), or its rows rejoin their bin.
        const counted = spikeValuesOf(col, maxModes);
        const keep = opts.pointMasses === true;
        const sc = scaleOf(col);
        const raw = m.values.slice(0, nb);
        const spikeCounts = counted.map((_, i) => m.values[nb + i] ?? 0);
        const total = occupiedBins(raw, noise).reduce((a, b) => a + b, 0) + spikeCounts.reduce((a, v) => a + Math.max(0, v), 0);
        const kept: { value: number; count: number }[] = [];
        counted.forEach((value, i) => {
          const at = spikeCounts[i]!;
          // A spike must stand out of the noise (as a lone bin must: 3σ) and carry a mode's share.
          if (keep && standsOut(at, noise, total)) kept.push({ value, count: at });
          // Not kept: its rows are the bin's again, so the mixture still covers them.
          else if (at > 0) raw[binOf(edges, sc.to(value))]! += at;
        });
        const candidates = keep ? counted : [];
        const counts = occupiedBins(raw, noise);
        const all = counts.reduce((a, b) => a + b, 0) + kept.reduce((a, k) => a + k.count, 0);
        const spikes = kept.map((k) => ({ value: k.value, weight: k.count / all }));
        const mixture = fitMixture(edges, counts, maxModes - candidates.length);
        const reflect = keep ? [] : reflectedBounds(col, counted.map((value, i) => ({ value, count: spikeCounts[i]! })), noise, total);
        states.push({ kind: 'numeric', column: col.name, mixture, ...(spikes.length > 0 ? { spikes } : {}), ...(reflect.length > 0 ? { reflect } : {}) });
      }
    });
    return new GmmTransformer(schema, maxModes, states, opts.pointMasses === true);
  }

  static fromJSON(json: unknown): GmmTransformer {
    const o = json as Partial<GmmTransformerState> | null;
    if (!o || o.kind !== 'gmm') throw new Error(`not a gmm transformer state (kind ${JSON.stringify(o?.kind)})`);
    const maxModes = o.maxModes;
    if (!Number.isInteger(maxModes) || maxModes! < 1 || maxModes! > 32) throw new Error('gmm transformer state: maxModes must be an integer in [1, 32]');
    const schema = validateSchema(o.schema);
    const pointMasses = o.pointMasses === true;
    if (o.columns === undefined) return new GmmTransformer(schema, maxModes!, undefined, pointMasses);
    if (!Array.isArray(o.columns)) throw new Error('gmm transformer state: columns must be an array');
    for (const c of o.columns) {
      if (c.kind === 'numeric') {
        const { weights, means, stds } = c.mixture ?? ({} as Mixture);
        const ok = [weights, means, stds].every((a) => Array.isArray(a) && a.length === weights.length && a.length > 0 && a.every(Number.isFinite));
        if (!ok || !stds.every((s) => s > 0)) throw new Error(`gmm transformer state: invalid mixture for '${c.column}'`);
        const sp = c.spikes;
        if (sp !== undefined && !(Array.isArray(sp) && sp.every((x) => x && Number.isFinite(x.value) && x.weight > 0 && x.weight <= 1) && sp.reduce((a, x) => a + x.weight, 0) <= 1 + 1e-9)) {
          throw new Error(`gmm transformer state: invalid spikes for '${c.column}'`);
        }
        const col = schema.columns.find((x) => x.name === c.column);
        if (c.reflect !== undefined && !(Array.isArray(c.reflect) && c.reflect.every((v) => col !== undefined && (v === col.min || v === col.max)))) {
          throw new Error(`gmm transformer state: reflect of '${c.column}' must list the column's declared bounds only`);
        }
      }
    }
    return new GmmTransformer(schema, maxModes!, o.columns as ColumnState[], pointMasses);
  }

  get fitted(): boolean {
    return this.columnStates !== undefined;
  }

  toJSON(): GmmTransformerState & Record<string, unknown> {
    return { kind: 'gmm', schema: this.schema, maxModes: this.maxModes, ...(this.columnStates ? { columns: this.columnStates } : {}), ...(this.pointMasses ? { pointMasses: true } : {}) } as GmmTransformerState & Record<string, unknown>;
  }

  /** The merged rare categories other than their slot: transform() maps them to the slot. */
  unusedCategories(): { offset: number; categories: number[]; slot: number }[] {
    const out: { offset: number; categories: number[]; slot: number }[] = [];
    for (const p of this.plans) {
      const merged = (p.state as DiscreteState | undefined)?.merged;
      if (merged) out.push({ offset: p.offset, categories: merged.categories.filter((j) => j !== merged.slot), slot: merged.slot });
    }
    return out;
  }

  /**
   * Per numeric column that cannot be missing: the offset of its mode one-hot and the share of rows
   * the fit gives each slot (mixture weights, the spikes' in their slots). For the generator's
   * marginal term; post-processing of the fit. Nullable columns are left out (missing rows take slot 0).
   * Empty for a transformer without point masses.
   */
  modeShares(): { offset: number; shares: number[] }[] {
    this.requireFit();
    // Held only with point masses, which need it (without it they come out over-produced).
    if (!this.pointMasses) return [];
    return this.plans
      .filter((p) => !isDiscrete(p.col) && !p.col.nullable)
      .map((p) => {
        const st = p.state as NumericState;
        const spiked = (st.spikes ?? []).reduce((a, x) => a + x.weight, 0);
        const shares = new Array<number>(this.maxModes).fill(0);
        st.mixture.weights.forEach((w, k) => (shares[k] = w * (1 - spiked)));
        for (const x of st.spikes ?? []) shares[this.spikeSlot(p, x.value)] = x.weight;
        return { offset: p.modeOffset, shares };
      });
  }

  /**
   * Per numeric column with a kept point mass (and no missing values): each spike's share alone and
   * the mixture's slots together, so the generator's marginal term holds how often it produces each
   * point mass without holding the mixture's own mode shares (see modeShares).
   */
  spikeShares(): { offset: number; shares: number[]; groups: number[][] }[] {
    this.requireFit();
    return this.plans
      .filter((p) => !isDiscrete(p.col) && !p.col.nullable && ((p.state as NumericState).spikes?.length ?? 0) > 0)
      .map((p) => {
        const spikes = (p.state as NumericState).spikes!;
        const slots = spikes.map((x) => this.spikeSlot(p, x.value));
        const rest = Array.from({ length: this.maxModes }, (_, j) => j).filter((j) => !slots.includes(j));
        return { offset: p.modeOffset, shares: [...spikes.map((x) => x.weight), Math.max(0, 1 - spikes.reduce((a, x) => a + x.weight, 0))], groups: [...slots.map((j) => [j]), rest] };
      });
  }

  discreteSpans(): DiscreteSpan[] {
    return this.plans
      .filter((p) => isDiscrete(p.col))
      .map((p) => ({ column: p.col.name, offset: p.offset, dim: p.categories.length + (p.col.nullable ? 1 : 0), categories: p.col.nullable ? [...p.categories, ''] : [...p.categories] }));
  }

  /** Mode assignment samples from the posterior (as CTGAN); `seed` makes it reproducible. */
  transform(rows: readonly Row[], seed = 1): Float32Array {
    this.requireFit();
    const d = this.outputDim;
    const out = new Float32Array(rows.length * d);
    let s = seed >>> 0 || 1;
    const uniform = (): number => {
      // xorshift32: fast, reproducible; mode sampling is part of encoding, not a privacy mechanism.
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 4294967296;
    };
    const post = new Float64Array(this.maxModes);
    rows.forEach((row, r) => {
      const base = r * d;
      for (const p of this.plans) {
        const v = row[p.index];
        if (isDiscrete(p.col)) {
          let j: number;
          if (v === null || v === undefined) {
            if (!p.col.nullable) throw new Error(`row ${r}: missing value in non-nullable column '${p.col.name}'`);
            j = p.categories.length;
          } else {
            const c = p.categories.indexOf(String(v));
            if (c < 0) throw new Error(`row ${r}: '${v}' is not a category of '${p.col.name}'`);
            j = p.slotOf![c]!;
          }
          out[base + p.offset + j] = 1;
          continue;
        }
        if (v === null || v === undefined) {
          if (!p.col.nullable) throw new Error(`row ${r}: missing value in non-nullable column '${p.col.name}'`);
          out[base + p.missingOffset + 1] = 1;
          out[base + p.modeOffset] = 1; // a fixed mode slot for missing values, scalar 0
          continue;
        }
        if (p.col.nullable) out[base + p.missingOffset] = 1;
        const spike = (p.state as NumericState).spikes?.find((x) => x.value === Number(v));
        if (spike) {
          out[base + p.modeOffset + this.spikeSlot(p, spike.value)] = 1; // α = 0
          continue;
        }
        const { weights, means, stds } = (p.state as NumericState).mixture;
        const u = p.scale.to(Math.min(p.col.max!, Math.max(p.col.min!, Number(v))));
        // Sample the mode from the posterior (CTGAN), restricted to modes whose scalar would not
        // be clipped, so that decoding gives the value back; the nearest mode if none qualifies.
        let m = -Infinity;
        let nearest = 0;
        for (let k = 0; k < weights.length; k++) {
          const z = Math.abs(u - means[k]!) / (4 * stds[k]!);
          const l = z <= ALPHA_CLIP ? Math.log(weights[k]!) - Math.log(stds[k]!) - 8 * z * z : -Infinity;
          post[k] = l;
          if (l > m) m = l;
          if (z < Math.abs(u - means[nearest]!) / (4 * stds[nearest]!)) nearest = k;
        }
        if (m === -Infinity) {
          for (let k = 0; k < weights.length; k++) post[k] = -Infinity;
          post[nearest] = 0;
          m = 0;
        }
        let tot = 0;
        for (let k = 0; k < weights.length; k++) tot += post[k] = Math.exp(post[k]! - m);
        let x = uniform() * tot;
        let mode = weights.length - 1;
        for (let k = 0; k < weights.length; k++) {
          x -= post[k]!;
          if (x < 0) {
            mode = k;
            break;
          }
        }
        const alpha = (u - means[mode]!) / (4 * stds[mode]!);
        out[base + p.offset] = Math.max(-ALPHA_CLIP, Math.min(ALPHA_CLIP, alpha));
        out[base + p.modeOffset + mode] = 1;
      }
    });
    return out;
  }

  inverse(data: Float32Array, n: number): Row[] {
    this.requireFit();
    const d = this.outputDim;
    if (data.length !== n * d) throw new Error(`expected ${n} x ${d} values, got ${data.length}`);
    const rows: Row[] = [];
    for (let r = 0; r < n; r++) {
      const base = r * d;
      const row: Row = new Array(this.schema.columns.length).fill(null);
      for (const p of this.plans) {
        if (isDiscrete(p.col)) {
          const dim = p.categories.length + (p.col.nullable ? 1 : 0);
          const j = argmax(data, base + p.offset, dim);
          if (j >= p.categories.length) continue; // missing
          let c = j;
          const merged = (p.state as DiscreteState | undefined)?.merged;
          if (merged && p.slotOf![j] === merged.slot) {
            // A merged slot stands for several rare categories: spread the rows over them.
            c = merged.categories[(Math.imul(r + 1, 2654435761) >>> 0) % merged.categories.length]!;
          }
          row[p.index] = p.col.type === 'boolean' ? c : p.categories[c]!;
          continue;
        }
        if (p.col.nullable && argmax(data, base + p.missingOffset, 2) === 1) continue;
        const { means, stds } = (p.state as NumericState).mixture;
        const mode = argmax(data, base + p.modeOffset, means.length); // pruned slots are ignored
        // A kept spike's slot beats the mixture's best mode: exactly its value.
        let best = data[base + p.modeOffset + mode]!;
        let spikeValue: number | undefined;
        for (const x of (p.state as NumericState).spikes ?? []) {
          const v = data[base + p.modeOffset + this.spikeSlot(p, x.value)]!;
          if (v > best) {
            best = v;
            spikeValue = x.value;
          }
        }
        if (spikeValue !== undefined) {
          row[p.index] = spikeValue;
          continue;
        }
        const alpha = Math.max(-1, Math.min(1, data[base + p.offset]!));
        let x = p.scale.from(alpha * 4 * stds[mode]! + means[mode]!);
        // A mixture tail past a reflecting bound is folded back inside, not piled onto it by the clamp
        // (credit-default's LIMIT_BAL: 6.6% of a sample at its minimum against 1.7% of the real rows).
        // With both bounds reflecting, a value more than a range outside is folded again (a triangle
        // wave): one fold would overshoot the far bound, and its clamp pile rows there (2.5% of one
        // credit-default sample at BILL_AMT2's maximum, which no real row reaches).
        if (p.reflectMin && p.reflectMax) x = foldInto(x, p.col.min!, p.col.max!);
        else if (x < p.col.min! && p.reflectMin) x = p.col.min! + (p.col.min! - x);
        else if (x > p.col.max! && p.reflectMax) x = p.col.max! - (x - p.col.max!);
        x = Math.min(p.col.max!, Math.max(p.col.min!, x));
        if (p.col.type === 'integer') x = Math.min(p.col.max!, Math.max(p.col.min!, Math.round(x)));
        row[p.index] = snapToStep(p.col, x);
      }
      rows.push(row);
    }
    return rows;
  }

  /** The mode slot of a numeric column's spike value (reserved from the last slot down, spikeValuesOf order). */
  private spikeSlot(p: Plan, value: number): number {
    return p.spikeSlots!.get(value)!;
  }

  private requireFit(): void {
    if (!this.columnStates) throw new Error('the gmm transformer has a layout but is not fitted yet (it is fitted from the banks\' DP summaries)');
  }
}
