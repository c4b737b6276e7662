// The reversible DataTransformer contract (CTGAN's data_transformer, as an interface): rows in the
// schema's order become a row-major float matrix whose layout is a list of output spans; the
// generator builds one output head per span, and `inverse` turns generated rows back into values.
import type { Row } from '../data/schema';

export interface OutputSpan {
  column: string;
  /** tanh: a scalar in [-1, 1]; softmax: a one-hot block. */
  kind: 'tanh' | 'softmax';
  dim: number;
  offset: number;
}

/** A discrete column's one-hot span, which the generator can be conditioned on. */
export interface DiscreteSpan {
  column: string;
  offset: number;
  dim: number;
  /** Category labels in span order (booleans: '0', '1'). */
  categories: string[];
}

export interface DataTransformer {
  readonly kind: string;
  readonly outputDim: number;
  readonly spans: readonly OutputSpan[];
  transform(rows: readonly Row[]): Float32Array;
  inverse(data: Float32Array, n: number): Row[];
  discreteSpans(): DiscreteSpan[];
  /**
   * Per softmax span (by offset), the categories the encoding never produces (e.g. rare categories
   * merged into another's slot): a generated row that picks one has no real counterpart. `slot`:
   * the category they are encoded as.
   */
  unusedCategories?(): { offset: number; categories: number[]; slot: number }[];
  /** Numeric columns' mode shares from the fit (gmm): see GmmTransformer.modeShares. */
  modeShares?(): { offset: number; shares: number[] }[];
  toJSON(): { kind: string } & Record<string, unknown>;
}
