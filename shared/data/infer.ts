// A first draft of a consortium schema from a CSV, for the operator to review and edit. Bounds and
// category lists in the draft come from the file it was run on, so they describe that data: the
// operator should widen/round the bounds and complete the category lists from domain knowledge
// before distributing the schema (the schema is treated as public). Bounds are already rounded
// outward to two significant digits so the exact extremes of the file are not copied. A numeric
// column's step (its grain: cents, round limits) is suggested only where nearly every value lies on it.
import { openCsv, type Separator } from './csv';
import { validateSchema, type ConsortiumSchema, type SchemaColumn } from './schema';

export interface InferOptions {
  /** Target (label) column: always categorical/boolean. */
  target?: string;
  /** Columns to mark as identifiers (never modelled). */
  ids?: string[];
  /** Integer columns with at most this many distinct values are treated as categorical (codes). */
  maxCodeLevels?: number;
  /** Text columns with more distinct values than this are treated as identifiers. */
  maxCategories?: number;
  separator?: Separator;
  /** Rows to read (default: all). */
  maxRows?: number;
}

const MISSING = new Set(['', 'NA', 'N/A', 'NaN', 'nan', 'null', 'NULL', 'None', '?']);

/** Rounds x outward to 2 significant digits (down for the lower bound, up for the upper). */
export function roundOutward(x: number, dir: 'down' | 'up'): number {
  if (x === 0) return 0;
  const p = 10 ** (Math.floor(Math.log10(Math.abs(x))) - 1);
  return (dir === 'down' ? Math.floor(x / p) : Math.ceil(x / p)) * p;
}

/** A grain is suggested only when this share of the values lies on it (a stray value does not veto it). */
export const STEP_MIN_SHARE = 0.999;
/** ... and when the file has at least this many values (a few round numbers can be chance). */
export const STEP_MIN_VALUES = 100;

/**
 * The grain of a numeric column, for the draft: the largest of 1, 2, 5 × 10^k (k ≥ 1) that at least
 * STEP_MIN_SHARE of the integer values are multiples of, with at least 4 multiples in the range;
 * otherwise 10^-d for the fewest decimals d ≤ 6 that cover that share as written (1 when they are
 * nearly all whole).
 * Undefined when no grain is clear.
 */
export function inferStep(values: readonly string[], integer: boolean, range: number): number | undefined {
  if (values.length < STEP_MIN_VALUES) return undefined;
  const need = Math.ceil(STEP_MIN_SHARE * values.length);
  if (integer) {
    const nums = values.map(Number);
    let best: number | undefined;
    for (let p = 10; 4 * p <= range; p *= 10) {
      for (const m of [1, 2, 5]) {
        const step = m * p;
        if (4 * step > range) break;
        if (nums.filter((v) => v % step === 0).length >= need) best = step;
      }
    }
    return best;
  }
  const decimals = values.map((v) => {
    if (/e/i.test(v)) return Infinity; // exponent notation: no written grain
    const dot = v.indexOf('.');
    return dot < 0 ? 0 : v.length - dot - 1;
  });
  for (let d = 0; d <= 6; d++) if (decimals.filter((x) => x <= d).length >= need) return Number((10 ** -d).toFixed(d));
  return undefined;
}

export async function inferSchemaFromCsv(path: string, opts: InferOptions = {}): Promise<ConsortiumSchema> {
  const src = await openCsv(path, opts.separator ? { separator: opts.separator } : {});
  const cols = src.header.map(() => ({ values: [] as string[], missing: 0 }));
  let n = 0;
  for await (const r of src.rows) {
    if (opts.maxRows !== undefined && n >= opts.maxRows) break;
    n++;
    src.header.forEach((_, j) => {
      const v = (r.values[j] ?? '').trim();
      if (MISSING.has(v)) cols[j]!.missing++;
      else cols[j]!.values.push(v);
    });
  }
  if (n === 0) throw new Error(`${path} has a header but no rows`);
  return inferSchema(src.header, cols, opts);
}

export function inferSchema(header: readonly string[], cols: readonly { values: string[]; missing: number }[], opts: InferOptions = {}): ConsortiumSchema {
  const maxCodes = opts.maxCodeLevels ?? 12;
  const maxCats = opts.maxCategories ?? 200;
  if (opts.target !== undefined && !header.includes(opts.target)) throw new Error(`target column '${opts.target}' is not in the header (${header.join(', ')})`);
  const columns: SchemaColumn[] = header.map((name, j) => {
    const { values, missing } = cols[j]!;
    const nullable = missing > 0;
    if (opts.ids?.includes(name)) return { name, type: 'categorical', role: 'id' };
    const distinct = [...new Set(values)];
    const nums = values.map(Number);
    const numeric = values.length > 0 && nums.every(Number.isFinite);
    const isTarget = name === opts.target;
    if (isTarget || !numeric || (nums.every(Number.isInteger) && distinct.length <= maxCodes)) {
      if (distinct.length > maxCats && !isTarget) return { name, type: 'categorical', role: 'id', description: `${distinct.length} distinct values: treated as an identifier` };
      // Categories in order of frequency (for codes: numeric order).
      const freq = new Map<string, number>();
      for (const v of values) freq.set(v, (freq.get(v) ?? 0) + 1);
      const cats = numeric ? distinct.sort((a, b) => Number(a) - Number(b)) : distinct.sort((a, b) => freq.get(b)! - freq.get(a)! || (a < b ? -1 : 1));
      if (cats.length === 1) cats.push(`${cats[0]}_other`);
      const col: SchemaColumn = { name, type: 'categorical', categories: cats };
      if (isTarget) col.role = 'target';
      if (nullable) col.nullable = true;
      return col;
    }
    const sorted = Float64Array.from(nums).sort();
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))]!;
    const integer = nums.every(Number.isInteger);
    let min = roundOutward(sorted[0]!, 'down');
    let max = roundOutward(sorted[sorted.length - 1]!, 'up');
    if (!(max > min)) max = min + 1;
    if (integer) {
      min = Math.floor(min);
      max = Math.ceil(max);
    }
    const col: SchemaColumn = { name, type: integer ? 'integer' : 'continuous', min, max };
    const step = inferStep(values, integer, max - min);
    if (step !== undefined) col.step = step;
    // Very heavy right tail (the maximum far beyond the interquartile spread): model on a log scale.
    const iqr = q(0.75) - q(0.25);
    if (max - q(0.5) > 20 * Math.max(iqr, 1e-9)) col.scale = 'log';
    if (nullable) col.nullable = true;
    return col;
  });
  return validateSchema({ version: 1, ...(opts.target ? { target: opts.target } : {}), columns });
}
