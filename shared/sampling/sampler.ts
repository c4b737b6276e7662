// Sampling a checkpointed global model: generator → transformer.inverse → rows. Unconditional
// samples draw the conditional vector from the consortium's category weights (merged DP-noised
// counts); `where` conditions the generator on one category of a discrete column and returns
// exactly the requested number of rows that satisfy it.
import { createModel, parseModelConfig, type OutputSpan } from '../model';
import type { Row } from '../data/schema';
import type { DataTransformer } from '../transformer/types';
import { SimpleTransformer } from '../transformer/simple';
import { GmmTransformer } from '../transformer/gmm';
import { frequenciesInSpanOrder, type ColumnWeights } from './category-weights';

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

export function sampleRows(m: SamplableModel, n: number, opts: SampleOptions = {}): { rows: Row[]; columns: string[] } {
  if (!Number.isInteger(n) || n < 1) throw new SamplingError(`the number of rows must be a positive integer, got ${n}`);
  const transformer = transformerFromState(m.transformer);
  const model = createModel(parseModelConfig(m.modelConfig), transformer.spans as OutputSpan[]);
  try {
    model.setWeights(m.tensors);
    const schemaColumns = (transformer as SimpleTransformer | GmmTransformer).schema.columns;
    const columns = schemaColumns.map((c) => c.name);
    const batch = 2000;
    const rows: Row[] = [];
    let seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
    if (!opts.where) {
      const weights = m.meta.categoryWeights;
      if (model.condSpans.length > 0 && !weights) throw new SamplingError('this model has no category weights (no bank summaries were merged before training); it cannot be sampled unconditionally');
      const categoryFrequencies = model.condSpans.length > 0 ? frequenciesInSpanOrder(model, weights!) : undefined;
      while (rows.length < n) {
        const k = Math.min(batch, n - rows.length);
        const data = model.generate(k, { categoryFrequencies, seed: seed++ });
        rows.push(...transformer.inverse(data, k));
        opts.onProgress?.(rows.length, n);
      }
      return { rows, columns };
    }
    const { column, value } = opts.where;
    const colIndex = columns.indexOf(column);
    if (colIndex < 0) throw new SamplingError(`--where names an unknown column '${column}' (columns: ${columns.join(', ')})`);
    const discrete = transformer.discreteSpans().find((d) => d.column === column);
    if (!discrete) throw new SamplingError(`--where needs a discrete (categorical or boolean) column; '${column}' is not one`);
    const category = discrete.categories.indexOf(normaliseBoolean(schemaColumns[colIndex]!.type, value));
    if (category < 0) throw new SamplingError(`'${value}' is not a category of '${column}' (categories: ${discrete.categories.filter((c) => c !== '').join(', ')})`);
    const conditioned = model.condSpans.some((s) => s.column === column);
    const matches = (r: Row): boolean => String(r[colIndex]) === discrete.categories[category];
    const maxTries = opts.maxTries ?? 50;
    let tries = 0;
    const weights = m.meta.categoryWeights;
    const categoryFrequencies = model.condSpans.length > 0 && weights ? frequenciesInSpanOrder(model, weights) : undefined;
    while (rows.length < n) {
      if (tries++ > maxTries + Math.ceil(n / batch)) {
        throw new SamplingError(`only ${rows.length} of ${n} rows with ${column}=${value} after ${tries - 1} batches: the model rarely produces this category`);
      }
      const k = batch;
      const data = conditioned
        ? model.generate(k, { cond: { column, category }, seed: seed++ })
        : model.generate(k, { categoryFrequencies, seed: seed++ });
      // Conditioning makes nearly every row match; the check keeps the guarantee exact.
      for (const r of transformer.inverse(data, k)) if (matches(r) && rows.length < n) rows.push(r);
      opts.onProgress?.(rows.length, n);
    }
    return { rows, columns };
  } finally {
    model.dispose();
  }
}

function normaliseBoolean(type: string, value: string): string {
  if (type !== 'boolean') return value;
  const l = value.toLowerCase();
  if (['1', 'true', 'yes'].includes(l)) return '1';
  if (['0', 'false', 'no'].includes(l)) return '0';
  return value;
}
