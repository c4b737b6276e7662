// Small pieces both transformers use, so that `simple` and `gmm` encode discrete values the same way.
import { isDiscrete, type SchemaColumn } from '../data/schema';

/** A discrete column's categories in one-hot order (booleans: '0', '1'); none for numeric columns. */
export function categoriesOf(c: SchemaColumn): string[] {
  if (c.type === 'boolean') return ['0', '1'];
  return isDiscrete(c) ? [...c.categories!] : [];
}

/** Index of the largest of a[offset .. offset+dim) (first one on ties): decodes a one-hot block. */
export function argmax(a: Float32Array, offset: number, dim: number): number {
  let best = 0;
  for (let j = 1; j < dim; j++) if (a[offset + j]! > a[offset + best]!) best = j;
  return best;
}
