// The consortium's category weights (merged DP-noised counts, per discrete column) put in the order
// of a model's conditional spans. Used by the bank's trainer and by every sampler.
import type { GanModel } from '../model';

export interface ColumnWeights {
  column: string;
  values: number[];
}

export function frequenciesInSpanOrder(model: GanModel, weights: readonly ColumnWeights[]): number[][] {
  const byColumn = new Map(weights.map((w) => [w.column, w.values]));
  return model.condSpans.map((s) => {
    const v = byColumn.get(s.column);
    if (!v) throw new Error(`the model has no category weights for column '${s.column}'`);
    if (v.length !== s.dim) throw new Error(`category weights for '${s.column}' have ${v.length} values, the model has ${s.dim} categories`);
    return v;
  });
}
