// Sampling a checkpointed global model: generator → (classifier labels) → transformer.inverse → rows.
// - Labels of the schema's target. When the model has the auxiliary classifier C of the target
//   (config.classifierColumn), generated rows get their label from C, drawn from C's class
//   probabilities given the generated features: x from the generator, y ~ C(y | x). C is trained
//   on the banks' real rows (under DP-SGD when the consortium trains privately) and carries the
//   target's relation to the other columns far more directly than the generator's own label
//   choice, which a GAN learns slowly and, under DP noise, hardly at all. `labels: 'generator'`
//   keeps the generator's labels. Post-processing of released weights: no privacy cost.
// - `where` conditions the generator on one category of a discrete column and returns exactly the
//   requested number of rows that satisfy it (rows that still miss are rejected, bounded tries).
//   On the target with C's labels: the class's rows of a stratified sample (rowsOfClass), so an
//   oversampled rare class looks like the rare rows of a plain sample. With the generator's
//   labels, or a class the noisy counts make too rare for C's labels to pick (then `labelledBy`
//   is absent), the rows are generated for the class and keep that label.
// - Unconditional, when the schema names a target that is a conditional column: stratified by the
//   target. Each target class c gets its share of the rows from the consortium's category weights
//   (merged DP-noised counts, public). With C's labels: each chunk of rows sampled as CTGAN does
//   gets exactly its classes' shares, rarest class first, each row joining a class with C's
//   probability shifted to the consortium's class share (QuotaDraw 'prior-shift').
//   With the generator's labels: rows are kept while their class has room; a class the generator
//   under-produces is topped up with rows generated for it (`where target = c`).
//   So the target's rate follows the consortium's counts, whatever the model's own rate (a rare
//   class such as fraud is easily over- or under-produced).
// - Otherwise: the conditional vector is drawn from the category weights as CTGAN does.
import { createModel, drawFromCdf, parseModelConfig, type OutputSpan } from '../model';
import type { Row } from '../data/schema';
import type { DataTransformer } from '../transformer/types';
import { SimpleTransformer } from '../transformer/simple';
import { GmmTransformer } from '../transformer/gmm';
import { frequenciesInSpanOrder, type ColumnWeights } from './category-weights';
import { Rng } from '../tensor/random';
import { applyLabelCalibration, calibrationClass, parseLabelCalibration, type LabelCalibration } from '../model/label-calibration';

export interface SamplableModel {
  modelConfig: unknown;
  transformer: unknown;
  tensors: { name: string; shape: number[]; data: Float32Array }[];
  meta: { categoryWeights?: ColumnWeights[] | null; [k: string]: unknown };
}

export interface SampleOptions {
  /** Only rows whose `column` equals `value` (a discrete column: categorical or boolean). */
  where?: { column: string; value: string };
  seed?: number;
  /** Rejection fallback: at most this many extra batches before giving up. */
  maxTries?: number;
  /** Unconditional samples: stratify by the schema's target (default true; see the header). */
  stratify?: boolean;
  /** Where the target's labels come from: the classifier C (default, when the model has one) or the generator. */
  labels?: 'classifier' | 'generator';
  /** Stratified with C's labels: how each class's rows are picked (default 'prior-shift'; see QuotaDraw). */
  quotaDraw?: QuotaDraw;
  /**
   * With C's labels: C's logits are multiplied by this before the labels are drawn (default 1, C as
   * trained; < 1 flattens C's posterior, > 1 sharpens it). A finite number > 0; `fedsynth sample
   * --label-temperature t` passes 1/t. Under DP-SGD C comes out over-confident on the real holdout
   * (BENCHMARKS.md, bench:privacy --also-label-scale): a flatter draw moved the TSTR classifier along
   * the same PR curve towards more recall on bank-marketing, and cost PR-AUC on the rare fraud class.
   */
  labelLogitScale?: number;
  /**
   * With C's labels: the map that calibrates C's probability of one class before the labels are
   * drawn (shared/model/label-calibration.ts), fitted to the banks' DP-noised calibration counts.
   * Default: the checkpoint's (meta.labelCalibration), if it has one; null: C as trained.
   */
  labelCalibration?: LabelCalibration | null;
  /**
   * `where` on the target with C's labels generates about rows / (the class's share) rows to find
   * them (rowsOfClass): a request that would need more than this many is refused up front, with
   * the most rows of that class it may ask for. Default: no limit (the CLI); the coordinator's
   * sampling endpoint sets one, since sampling blocks its event loop.
   */
  maxGeneratedRows?: number;
  onProgress?: (done: number, total: number) => void;
}

export class SamplingError extends Error {
  override name = 'SamplingError';
}

export function transformerFromState(state: unknown): DataTransformer {
  const kind = (state as { kind?: string } | null)?.kind;
  if (kind === 'simple') return SimpleTransformer.fromJSON(state);
  if (kind === 'gmm') {
    const t = GmmTransformer.fromJSON(state);
    if (!t.fitted) throw new SamplingError('this checkpoint predates the first round: its transformer is not fitted yet, so there is nothing to sample');
    return t;
  }
  throw new SamplingError(`unknown transformer kind ${JSON.stringify(kind)} in the checkpoint`);
}

export interface SampleResult {
  rows: Row[];
  columns: string[];
  /** The target column the rows were stratified by (absent: not stratified, e.g. `where`, no target, or the fallback). */
  stratifiedBy?: string;
  /** The target column whose labels were drawn from the classifier C (absent: the generator's labels). */
  labelledBy?: string;
}

/**
 * How many rows a stratified sample (sampleRows' default) needs for every class of the schema's
 * target to get at least `minClassRows` rows, and at least `rows`. Each class's share is the
 * consortium's DP-noised count (the checkpoint's category weights, public), apportioned as
 * sampleRows does, so the returned count gives the rarest class exactly what was asked or more.
 * A train-on-synthetic model of a rare class learns from the rows C labels with that class, and
 * the labels are draws: on the 24k simulated data at ε = 1 (about 100 real fraud rows in all), a
 * GBDT trained on a sample of about 10x the train split's rows (~1,000 fraud rows) reached a
 * holdout PR-AUC of 0.07-0.28 where the same model's sample of the train split's size gave
 * 0.02-0.15, in each of five paired runs (bench:privacy, BENCHMARKS.md). Post-processing of the
 * released model: no privacy cost.
 * A class whose noisy count came out ≤ 0 gets no rows at any size and is left out.
 */
export function rowsForClassMinimum(m: SamplableModel, rows: number, minClassRows: number): { rows: number; column: string; label: string; share: number } {
  if (!Number.isInteger(rows) || rows < 1) throw new SamplingError(`the number of rows must be a positive integer, got ${rows}`);
  if (!Number.isInteger(minClassRows) || minClassRows < 1) throw new SamplingError(`the rows per class must be a positive integer, got ${minClassRows}`);
  const transformer = transformerFromState(m.transformer);
  const target = (transformer as SimpleTransformer | GmmTransformer).schema.target;
  if (target === undefined) throw new SamplingError("a minimum of rows per class needs the schema's target, and this model's schema names none");
  const values = m.meta.categoryWeights?.find((w) => w.column === target)?.values;
  if (!values) throw new SamplingError(`a minimum of rows per class needs the consortium's class counts of '${target}', and this checkpoint has none`);
  const categories = transformer.discreteSpans().find((d) => d.column === target)!.categories;
  // The rarest class with a positive noisy count, as the label calibration picks it.
  const rarest = calibrationClass(values)?.classIndex;
  if (rarest === undefined) throw new SamplingError(`the consortium's class counts of '${target}' are all 0 or below: a stratified sample has no class shares`);
  const share = values[rarest]! / values.reduce((a, w) => a + Math.max(0, w), 0);
  let n = Math.max(rows, Math.ceil(minClassRows / share));
  // n·share ≥ k up to floating point, which could leave the class one row short.
  while (apportion(n, values)![rarest]! < minClassRows) n++;
  return { rows: n, column: target, label: categories[rarest]!, share };
}

export function sampleRows(m: SamplableModel, n: number, opts: SampleOptions = {}): SampleResult {
  if (!Number.isInteger(n) || n < 1) throw new SamplingError(`the number of rows must be a positive integer, got ${n}`);
  const a = opts.labelLogitScale;
  if (a !== undefined && !(Number.isFinite(a) && a > 0)) throw new SamplingError(`labelLogitScale must be a finite number > 0, got ${a}`);
  const transformer = transformerFromState(m.transformer);
  const model = createModel(parseModelConfig(m.modelConfig), transformer.spans as OutputSpan[]);
  try {
    model.setWeights(m.tensors);
    // Categories the encoding never produces (rare ones merged into a slot) are never drawn.
    const excluded = transformer.unusedCategories?.() ?? [];
    const schemaColumns = (transformer as SimpleTransformer | GmmTransformer).schema.columns;
    const columns = schemaColumns.map((c) => c.name);
    const batch = 2000;
    const rows: Row[] = [];
    let seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
    const weights = m.meta.categoryWeights;
    const freqs = model.condSpans.length > 0 && weights ? frequenciesInSpanOrder(model, weights) : undefined;
    const labelSpan = opts.labels !== 'generator' ? model.labelSpan : null;
    const calibrationSource = opts.labelCalibration !== undefined ? opts.labelCalibration : m.meta.labelCalibration;
    const calibration = labelSpan && calibrationSource ? parseLabelCalibration(calibrationSource, labelSpan.dim) : null;
    // Label draws have their own stream (generation seeds run seed, seed+1, …).
    const labelRng = new Rng(seed + 0x40000000);
    /** Overwrites the label span of k generated rows with C's draws (exact class counts when `quotas`). */
    const labelRows = (data: Float32Array, k: number, quotas?: number[]): void => {
      const span = labelSpan!;
      const probs = model.classifierProbabilities(data, k);
      if (calibration) applyLabelCalibration(probs, span.dim, calibration);
      if (opts.labelLogitScale !== undefined && opts.labelLogitScale !== 1) scaleLogits(probs, span.dim, opts.labelLogitScale);
      const labels = quotas ? labelsForQuotas(probs, span.dim, quotas, labelRng, opts.quotaDraw) : labelsByDraw(probs, span.dim, labelRng);
      const d = model.outputDim;
      for (let r = 0; r < k; r++) {
        data.fill(0, r * d + span.offset, r * d + span.offset + span.dim);
        data[r * d + span.offset + labels[r]!] = 1;
      }
    };
    /**
     * `count` rows whose column `colIndex` is `category`: generated conditioned on it when it is a
     * conditional column, else drawn as CTGAN does; rows that miss are rejected (bounded tries).
     * Seeds run from `firstSeed`.
     */
    const rowsWhere = (column: string, colIndex: number, category: number, label: string, count: number, firstSeed: number, onProgress?: (done: number) => void): Row[] => {
      const discrete = transformer.discreteSpans().find((d) => d.column === column)!;
      const conditioned = model.condSpans.some((s) => s.column === column);
      // A rare category merged into another's slot is encoded (and generated) as that slot.
      const merged = excluded.find((e) => e.offset === discrete.offset && e.categories.includes(category));
      const condCategory = merged ? merged.slot : category;
      const matches = (r: Row): boolean => String(r[colIndex]) === discrete.categories[category];
      const maxTries = opts.maxTries ?? 50;
      const out: Row[] = [];
      let tries = 0;
      let s = firstSeed;
      while (out.length < count) {
        if (tries++ > maxTries + Math.ceil(count / batch)) {
          throw new SamplingError(`only ${out.length} of ${count} rows with ${column}=${label} after ${tries - 1} batches: the model rarely produces this category`);
        }
        const data = conditioned
          ? model.generate(batch, { excluded, cond: { column, category: condCategory }, seed: s++ })
          : model.generate(batch, { excluded, categoryFrequencies: freqs, seed: s++ });
        if (labelSpan && column !== labelSpan.column) labelRows(data, batch);
        // Conditioning makes nearly every row match; the check keeps the guarantee exact.
        for (const r of transformer.inverse(data, batch)) if (matches(r) && out.length < count) out.push(r);
        onProgress?.(out.length);
      }
      return out;
    };
    /**
     * `count` rows that C labels `category` of its column: the rows of that class in a stratified
     * sample (generated as CTGAN does, labelled by C with its prior shifted to the consortium's
     * class share), in chunks that each expect ≥ ROWS_OF_CLASS_PER_CHUNK of them. So an oversample
     * of a rare class is made of the same kind of rows as the class's rows in a plain sample (those
     * that train-on-synthetic models learn from, bench:privacy); conditioning the generator alone
     * gives rows that, under DP noise, hardly differ from the other classes' (BENCHMARKS.md).
     * null when C's labels cannot pick the class: the noisy counts give it no share, or less than
     * one row in a chunk (the caller then conditions the generator, as with --generator-labels).
     */
    const rowsOfClass = (spanIndex: number, category: number, label: string, count: number, firstSeed: number, onProgress?: (done: number) => void): Row[] | null => {
      const span = labelSpan!;
      const shares = freqs![spanIndex]!;
      const total = shares.reduce((a, w) => a + Math.max(0, w), 0);
      const share = total > 0 ? Math.max(0, shares[category]!) / total : 0;
      if (!(share > 0)) return null;
      const chunk = Math.min(MAX_CHUNK, Math.max(batch, Math.ceil(ROWS_OF_CLASS_PER_CHUNK / share)));
      const quotas = apportion(chunk, shares)!;
      if (quotas[category] === 0) return null;
      const limit = opts.maxGeneratedRows;
      if (limit !== undefined && count / share > limit) {
        const most = Math.floor(limit * share);
        throw new SamplingError(
          `${count} rows of ${span.column}=${label} (${(100 * share).toPrecision(2)}% of the rows) need about ${Math.ceil(count / share)} generated rows, over this request's limit of ${limit}: ask for at most ${most} rows of it per request (or sample a fetched model with fedsynth sample)`,
        );
      }
      const maxChunks = (opts.maxTries ?? 50) + Math.ceil(count / Math.max(1, share * chunk));
      const d = model.outputDim;
      const out: Row[] = [];
      let s = firstSeed;
      for (let tries = 0; out.length < count; tries++) {
        if (tries >= maxChunks) throw new SamplingError(`only ${out.length} of ${count} rows labelled ${span.column}=${label} after ${tries} chunks of ${chunk} rows`);
        const data = model.generate(chunk, { excluded, categoryFrequencies: freqs, seed: s++ });
        labelRows(data, chunk, quotas);
        const picked: number[] = [];
        for (let r = 0; r < chunk && out.length + picked.length < count; r++) if (data[r * d + span.offset + category] === 1) picked.push(r);
        const sel = new Float32Array(picked.length * d);
        picked.forEach((r, i) => sel.set(data.subarray(r * d, (r + 1) * d), i * d));
        out.push(...transformer.inverse(sel, picked.length));
        onProgress?.(out.length);
      }
      return out;
    };
    const target = (transformer as SimpleTransformer | GmmTransformer).schema.target;
    const targetSpan = target === undefined ? -1 : model.condSpans.findIndex((s) => s.column === target);
    const labelledBy = labelSpan ? { labelledBy: labelSpan.column } : {};
    if (!opts.where && opts.stratify !== false && targetSpan >= 0 && freqs && labelSpan?.column === target) {
      const remaining = apportion(n, freqs[targetSpan]!);
      if (remaining) {
        // Each chunk takes its share of the classes' remaining quotas, so the totals are exact.
        while (rows.length < n) {
          const k = Math.min(batch, n - rows.length);
          const quotas = apportion(k, remaining)!;
          quotas.forEach((q, c) => (remaining[c]! -= q));
          const data = model.generate(k, { excluded, categoryFrequencies: freqs, seed: seed++ });
          labelRows(data, k, quotas);
          rows.push(...transformer.inverse(data, k));
          opts.onProgress?.(rows.length, n);
        }
        return { rows, columns, stratifiedBy: target!, ...labelledBy };
      }
    }
    if (!opts.where && opts.stratify !== false && targetSpan >= 0 && freqs && !labelSpan) {
      const quotas = apportion(n, freqs[targetSpan]!);
      if (quotas) {
        const categories = transformer.discreteSpans().find((d) => d.column === target)!.categories;
        const classOf = new Map(categories.map((c, k) => [c, k]));
        const ti = columns.indexOf(target!);
        const byClass: Row[][] = quotas.map(() => []);
        let have = 0;
        // 1. Rows sampled as CTGAN does (the generator picks each row's label together with its
        //    features), kept while their class still has room.
        for (let b = 0; have < n && b < Math.ceil((2 * n) / batch) + 2; b++) {
          const data = model.generate(batch, { excluded, categoryFrequencies: freqs, seed: seed++ });
          for (const r of transformer.inverse(data, batch)) {
            const c = classOf.get(String(r[ti]));
            if (c !== undefined && byClass[c]!.length < quotas[c]!) {
              byClass[c]!.push(r);
              have++;
            }
          }
          opts.onProgress?.(have, n);
        }
        try {
          // 2. A class the generator under-produces: the rest generated for it (as `where`).
          quotas.forEach((q, c) => {
            const missing = q - byClass[c]!.length;
            if (missing <= 0) return;
            byClass[c]!.push(...rowsWhere(target!, ti, c, categories[c]!, missing, seed++));
            have += missing;
            opts.onProgress?.(have, n);
          });
          rows.push(...byClass.flat());
          new Rng(seed).shuffle(rows);
          return { rows, columns, stratifiedBy: target! };
        } catch (e) {
          // A class the generator (almost) never produces: sample as CTGAN does instead.
          if (!(e instanceof SamplingError)) throw e;
        }
      }
    }
    if (!opts.where) {
      if (model.condSpans.length > 0 && !weights) throw new SamplingError('this model has no category weights (no bank summaries were merged before training); it cannot be sampled unconditionally');
      while (rows.length < n) {
        const k = Math.min(batch, n - rows.length);
        const data = model.generate(k, { excluded, categoryFrequencies: freqs, seed: seed++ });
        if (labelSpan) labelRows(data, k);
        rows.push(...transformer.inverse(data, k));
        opts.onProgress?.(rows.length, n);
      }
      return { rows, columns, ...labelledBy };
    }
    const { column, value } = opts.where;
    const colIndex = columns.indexOf(column);
    if (colIndex < 0) throw new SamplingError(`--where names an unknown column '${column}' (columns: ${columns.join(', ')})`);
    const discrete = transformer.discreteSpans().find((d) => d.column === column);
    if (!discrete) throw new SamplingError(`--where needs a discrete (categorical or boolean) column; '${column}' is not one`);
    const category = discrete.categories.indexOf(normaliseBoolean(schemaColumns[colIndex]!.type, value));
    if (category < 0) throw new SamplingError(`'${value}' is not a category of '${column}' (categories: ${discrete.categories.filter((c) => c !== '').join(', ')})`);
    const progress = (done: number): void => opts.onProgress?.(done, n);
    const classSpan = labelSpan?.column === column && freqs ? model.condSpans.findIndex((sp) => sp.column === column) : -1;
    const byClass = classSpan >= 0 ? rowsOfClass(classSpan, category, value, n, seed, progress) : null;
    if (byClass) return { rows: byClass, columns, ...labelledBy };
    const whereRows = rowsWhere(column, colIndex, category, value, n, seed, progress);
    return { rows: whereRows, columns, ...(labelSpan && column !== labelSpan.column ? labelledBy : {}) };
  } finally {
    model.dispose();
  }
}

/** Rows generated per chunk when picking one class's rows by C's labels: at most this many… */
const MAX_CHUNK = 20000;
/** …and enough that each chunk expects this many of the class (an exact quota per chunk). */
const ROWS_OF_CLASS_PER_CHUNK = 20;

/** One label per row drawn from its class probabilities (probs: rows·k values, row-major). */
export function labelsByDraw(probs: Float32Array, k: number, rng: Rng): Int32Array {
  const n = probs.length / k;
  const out = new Int32Array(n);
  const cdf = new Float64Array(k);
  for (let r = 0; r < n; r++) {
    let acc = 0;
    for (let c = 0; c < k; c++) cdf[c] = acc += probs[r * k + c]!;
    for (let c = 0; c < k; c++) cdf[c]! /= acc;
    out[r] = drawFromCdf(cdf, rng.next());
  }
  return out;
}

/**
 * In place: each row of class probabilities (n × k, row-major) becomes softmax(a · logits), i.e.
 * p_c^a renormalised (a probability of 0 stays 0).
 */
export function scaleLogits(probs: Float32Array, k: number, a: number): void {
  for (let r = 0; r < probs.length / k; r++) {
    let z = 0;
    for (let c = 0; c < k; c++) z += probs[r * k + c] = probs[r * k + c]! > 0 ? Math.pow(probs[r * k + c]!, a) : 0;
    if (z > 0) for (let c = 0; c < k; c++) probs[r * k + c]! /= z;
  }
}

/**
 * How labelsForQuotas picks each class's rows.
 * 'prior-shift' (default): row r joins class c with probability σ(logit p_rc + λ), λ set so the
 *   probabilities sum to the quota: C's posterior under the consortium's class share (a shift of
 *   the class prior, Saerens et al. 2002), then exactly the quota drawn with those inclusion
 *   probabilities (systematic sampling over a random order, Madow 1949). With a calibrated C and its
 *   own class share the labels are plain draws from C.
 * 'weighted': without replacement with weights p_rc (Efraimidis & Spirakis 2006). Row r's
 *   inclusion probability is then 1 − t^p_rc, which flattens C's posterior: rows C deems unlikely
 *   are over-included and likely ones under-included (kept for comparison in bench:privacy).
 */
export type QuotaDraw = 'prior-shift' | 'weighted';

/**
 * Labels with exact class counts (quotas, summing to the row count): for each class, rarest first,
 * quotas[c] of the rows not yet labelled (see QuotaDraw); the most frequent class takes the rest.
 */
export function labelsForQuotas(probs: Float32Array, k: number, quotas: readonly number[], rng: Rng, draw: QuotaDraw = 'prior-shift'): Int32Array {
  const n = probs.length / k;
  if (quotas.length !== k) throw new Error(`labelsForQuotas: ${quotas.length} quotas for ${k} classes`);
  if (quotas.reduce((a, b) => a + b, 0) !== n) throw new Error(`labelsForQuotas: quotas sum to ${quotas.reduce((a, b) => a + b, 0)}, not the ${n} rows`);
  const out = new Int32Array(n).fill(-1);
  const order = quotas.map((_, c) => c).sort((a, b) => quotas[a]! - quotas[b]! || a - b);
  const last = order.pop()!;
  const open = new Set(quotas.map((_, c) => c));
  for (const c of order) {
    if (quotas[c] === 0) {
      open.delete(c);
      continue;
    }
    const free: number[] = [];
    for (let r = 0; r < n; r++) if (out[r] === -1) free.push(r);
    // C's probability of c among the classes still open (earlier, rarer ones are assigned).
    const p = free.map((r) => {
      let rest = 0;
      for (const o of open) rest += Math.max(0, probs[r * k + o]!);
      return rest > 0 ? Math.max(0, probs[r * k + c]!) / rest : 0;
    });
    open.delete(c);
    const picked = draw === 'weighted' ? weightedDraw(p, quotas[c]!, rng) : priorShiftDraw(p, quotas[c]!, rng);
    for (const j of picked) out[free[j]!] = c;
  }
  for (let r = 0; r < n; r++) if (out[r] === -1) out[r] = last;
  return out;
}

/** m of p.length indices without replacement, weights p (Efraimidis–Spirakis keys log(u)/w). */
function weightedDraw(p: readonly number[], m: number, rng: Rng): number[] {
  const keys = p.map((w, j) => ({ j, key: w > 0 ? Math.log(rng.nextOpen()) / w : -Infinity }));
  keys.sort((a, b) => b.key - a.key || a.j - b.j);
  return keys.slice(0, m).map((e) => e.j);
}

/**
 * Probabilities p of one class shifted in logit by one λ so that they sum to m: σ(logit p_j + λ),
 * the class's posterior under a prior that expects m of these rows (Saerens et al. 2002). λ by
 * bisection; p clamped to [1e-12, 1 − 1e-12] so every row keeps a chance either way.
 */
export function priorShiftProbabilities(p: readonly number[], m: number): number[] {
  const logit = p.map((x) => {
    const q = Math.min(1 - 1e-12, Math.max(1e-12, x));
    return Math.log(q / (1 - q));
  });
  const total = (lam: number): number => logit.reduce((s, l) => s + 1 / (1 + Math.exp(-(l + lam))), 0);
  let lo = -60;
  let hi = 60;
  for (let it = 0; it < 100 && hi - lo > 1e-10; it++) {
    const mid = (lo + hi) / 2;
    if (total(mid) < m) lo = mid;
    else hi = mid;
  }
  const lam = (lo + hi) / 2;
  return logit.map((l) => 1 / (1 + Math.exp(-(l + lam))));
}

/** Exactly m of p.length indices, index j with probability π_j of priorShiftProbabilities (Σ π = m). */
function priorShiftDraw(p: readonly number[], m: number, rng: Rng): number[] {
  const n = p.length;
  if (m <= 0) return [];
  if (m >= n) return p.map((_, j) => j);
  const pi = priorShiftProbabilities(p, m);
  // Systematic sampling in a random order: a uniform start u, then the rows whose running sum of
  // π crosses u, u + 1, … Each row is taken with probability π_j, and Σ π = m rows in all.
  const perm = rng.shuffle(Array.from({ length: n }, (_, j) => j));
  const scale = m / pi.reduce((a, b) => a + b, 0); // removes the bisection's rounding from Σ π
  const picked: number[] = [];
  const taken = new Uint8Array(n);
  let next = rng.next();
  let run = 0;
  for (const j of perm) {
    run += pi[j]! * scale;
    if (run > next && picked.length < m) {
      picked.push(j);
      taken[j] = 1;
      next += 1;
    }
  }
  // Floating-point shortfall (at most one row): the likeliest rows not yet taken.
  if (picked.length < m) {
    const rest = perm.filter((j) => !taken[j]).sort((a, b) => pi[b]! - pi[a]! || a - b);
    picked.push(...rest.slice(0, m - picked.length));
  }
  return picked;
}

/**
 * n split in proportion to non-negative weights, by largest remainder (exactly n in total), or
 * null when the weights sum to 0.
 */
export function apportion(n: number, weights: readonly number[]): number[] | null {
  const total = weights.reduce((a, w) => a + Math.max(0, w), 0);
  if (!(total > 0)) return null;
  const exact = weights.map((w) => (n * Math.max(0, w)) / total);
  const out = exact.map(Math.floor);
  let left = n - out.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; left > 0; k++, left--) out[order[k % order.length]!.i]! += 1;
  return out;
}

function normaliseBoolean(type: string, value: string): string {
  if (type !== 'boolean') return value;
  const l = value.toLowerCase();
  if (['1', 'true', 'yes'].includes(l)) return '1';
  if (['0', 'false', 'no'].includes(l)) return '0';
  return value;
}
