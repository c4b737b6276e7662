// The consortium schema: a JSON file the operator distributes (column names, types, declared
// bounds, category lists). It is public by construction: written by people, never computed from a
// bank's rows, so everything derived from it alone (the simple transformer, its hash) costs no
// privacy. Every bank checks its CSV against it; row problems are reported with line, column and
// reason, and the file is refused outright when its header does not match or too many rows are bad.
import { createHash } from 'node:crypto';
import { openCsv, type Separator } from './csv';

export type ColumnType = 'continuous' | 'integer' | 'categorical' | 'boolean' | 'datetime';
/** id and pii columns are never parsed, modelled, or sent: their values are dropped at load. */
export type ColumnRole = 'feature' | 'target' | 'id' | 'pii';

export interface SchemaColumn {
  name: string;
  type: ColumnType;
  role?: ColumnRole;
  /** Declared bounds (numbers; for datetime, epoch milliseconds or ISO-8601 strings). */
  min?: number;
  max?: number;
  /**
   * Numeric columns: the scale the model works on. 'log' (asinh-based, also defined for zero and
   * negative values) suits heavy-tailed amounts; default 'linear'. Public, like the bounds.
   */
  scale?: 'linear' | 'log';
  /**
   * Numeric columns: the grain of the values, e.g. 0.01 for amounts in cents or 10000 for credit
   * limits set in tens of thousands. Synthetic values are multiples of it (snapToStep); real rows
   * are not checked against it. Public, like the bounds.
   */
  step?: number;
  /** Categorical: the full public category list. */
  categories?: string[];
  /** May the value be missing (empty cell)? Missing values are modelled with an indicator. */
  nullable?: boolean;
  description?: string;
}

export interface ConsortiumSchema {
  version: 1;
  name?: string;
  /** The label column (categorical/boolean), e.g. is_fraud. */
  target?: string;
  columns: SchemaColumn[];
}

/** One record in schema column order: numbers (continuous, integer, boolean 0/1, datetime epoch ms), strings (categorical), null (missing or id/pii). */
export type Row = (number | string | null)[];

export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

const TYPES: readonly ColumnType[] = ['continuous', 'integer', 'categorical', 'boolean', 'datetime'];
/** Relative slack in step arithmetic, so that 0.07 / 0.01 counts as the multiple it is. */
const STEP_TOLERANCE = 1e-9;

const ROLES: readonly ColumnRole[] = ['feature', 'target', 'id', 'pii'];
const COLUMN_KEYS = new Set(['name', 'type', 'role', 'min', 'max', 'scale', 'step', 'categories', 'nullable', 'description']);
const SCHEMA_KEYS = new Set(['version', 'name', 'target', 'columns', 'description']);

export function isModelled(c: SchemaColumn): boolean {
  return c.role !== 'id' && c.role !== 'pii';
}

export function isDiscrete(c: SchemaColumn): boolean {
  return c.type === 'categorical' || c.type === 'boolean';
}

function boundOf(v: unknown, where: string, type: ColumnType): number {
  if (type === 'datetime' && typeof v === 'string') {
    const t = Date.parse(v);
    if (!Number.isFinite(t)) throw new SchemaError(`${where}: '${v}' is not an ISO-8601 date`);
    return t;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchemaError(`${where} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Checks a parsed schema JSON and returns a normalised copy (datetime bounds as epoch ms).
 * Every error names the offending key, e.g. `columns[3] (amount).max`.
 */
export function validateSchema(json: unknown): ConsortiumSchema {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SchemaError('schema: expected a JSON object');
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!SCHEMA_KEYS.has(k)) throw new SchemaError(`schema: unknown key '${k}'`);
  if (o.version !== 1) throw new SchemaError(`schema.version: expected 1, got ${JSON.stringify(o.version)}`);
  if (o.name !== undefined && typeof o.name !== 'string') throw new SchemaError('schema.name must be a string');
  if (!Array.isArray(o.columns) || o.columns.length === 0) throw new SchemaError('schema.columns must be a non-empty array');
  const names = new Set<string>();
  const columns: SchemaColumn[] = o.columns.map((raw, i) => {
    const where = `columns[${i}]`;
    if (!raw || typeof raw !== 'object') throw new SchemaError(`${where}: expected an object`);
    const c = raw as Record<string, unknown>;
    for (const k of Object.keys(c)) if (!COLUMN_KEYS.has(k)) throw new SchemaError(`${where}: unknown key '${k}'`);
    if (typeof c.name !== 'string' || c.name.trim() === '') throw new SchemaError(`${where}.name must be a non-empty string`);
    const name = c.name;
    const at = `${where} (${name})`;
    if (names.has(name)) throw new SchemaError(`${at}: duplicate column name`);
    names.add(name);
    if (!TYPES.includes(c.type as ColumnType)) throw new SchemaError(`${at}.type must be one of ${TYPES.join(', ')}, got ${JSON.stringify(c.type)}`);
    const type = c.type as ColumnType;
    if (c.role !== undefined && !ROLES.includes(c.role as ColumnRole)) throw new SchemaError(`${at}.role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(c.role)}`);
    const col: SchemaColumn = { name, type };
    if (c.role !== undefined) col.role = c.role as ColumnRole;
    if (c.description !== undefined) col.description = String(c.description);
    if (c.nullable !== undefined) {
      if (typeof c.nullable !== 'boolean') throw new SchemaError(`${at}.nullable must be true or false`);
      col.nullable = c.nullable;
    }
    if (!isModelled(col)) return col; // id/pii: nothing else is needed, nothing is read
    if (type === 'continuous' || type === 'integer' || type === 'datetime') {
      if (c.min === undefined || c.max === undefined) throw new SchemaError(`${at}: a ${type} column needs declared 'min' and 'max' (public bounds, not computed from data)`);
      col.min = boundOf(c.min, `${at}.min`, type);
      col.max = boundOf(c.max, `${at}.max`, type);
      if (!(col.max > col.min)) throw new SchemaError(`${at}: max (${col.max}) must be greater than min (${col.min})`);
      if (type === 'integer' && (!Number.isInteger(col.min) || !Number.isInteger(col.max))) throw new SchemaError(`${at}: integer bounds must be integers`);
      if (c.categories !== undefined) throw new SchemaError(`${at}.categories is only for categorical columns`);
      if (c.scale !== undefined) {
        if (c.scale !== 'linear' && c.scale !== 'log') throw new SchemaError(`${at}.scale must be 'linear' or 'log', got ${JSON.stringify(c.scale)}`);
        col.scale = c.scale;
      }
      if (c.step !== undefined) {
        if (type === 'datetime') throw new SchemaError(`${at}.step is for continuous and integer columns`);
        if (typeof c.step !== 'number' || !Number.isFinite(c.step) || !(c.step > 0)) throw new SchemaError(`${at}.step must be a positive number, got ${JSON.stringify(c.step)}`);
        if (type === 'integer' && !Number.isInteger(c.step)) throw new SchemaError(`${at}.step of an integer column must be an integer, got ${c.step}`);
        if (Math.ceil(col.min / c.step - STEP_TOLERANCE) * c.step > col.max + STEP_TOLERANCE * c.step) throw new SchemaError(`${at}.step ${c.step}: no multiple of it lies within [${col.min}, ${col.max}]`);
        col.step = c.step;
      }
    } else if (type === 'categorical') {
      if (!Array.isArray(c.categories) || c.categories.length < 2) throw new SchemaError(`${at}.categories must list at least 2 categories`);
      const cats = c.categories.map((v, j) => {
        if (typeof v !== 'string' || v === '') throw new SchemaError(`${at}.categories[${j}] must be a non-empty string`);
        return v;
      });
      if (new Set(cats).size !== cats.length) throw new SchemaError(`${at}.categories has duplicates`);
      col.categories = cats;
      if (c.min !== undefined || c.max !== undefined || c.scale !== undefined || c.step !== undefined) throw new SchemaError(`${at}: min/max/scale/step are not used by categorical columns`);
    } else if (c.categories !== undefined || c.min !== undefined || c.max !== undefined || c.scale !== undefined || c.step !== undefined) {
      throw new SchemaError(`${at}: a boolean column takes no categories or bounds`);
    }
    return col;
  });
  const schema: ConsortiumSchema = { version: 1, columns };
  if (typeof o.name === 'string') schema.name = o.name;
  const targetCol = columns.find((c) => c.role === 'target');
  if (o.target !== undefined) {
    if (typeof o.target !== 'string') throw new SchemaError('schema.target must be a column name');
    const t = columns.find((c) => c.name === o.target);
    if (!t) throw new SchemaError(`schema.target: no column named '${o.target}'`);
    if (!isDiscrete(t) || !isModelled(t)) throw new SchemaError(`schema.target: '${o.target}' must be a modelled categorical or boolean column`);
    if (targetCol && targetCol.name !== t.name) throw new SchemaError(`schema.target '${t.name}' disagrees with column '${targetCol.name}' marked role: target`);
    schema.target = t.name;
  } else if (targetCol) {
    if (!isDiscrete(targetCol)) throw new SchemaError(`columns (${targetCol.name}): a target column must be categorical or boolean`);
    schema.target = targetCol.name;
  }
  if (!columns.some(isModelled)) throw new SchemaError('schema: every column is id/pii; nothing to model');
  return schema;
}

/**
 * x as the nearest multiple of the column's step within its bounds (x itself without a step). Steps
 * below 1 are rounded in decimal, so 0.07 prints as 0.07, not 0.07000000000000001.
 */
export function snapToStep(c: SchemaColumn, x: number): number {
  const step = c.step;
  if (step === undefined || !Number.isFinite(x)) return x;
  let k = Math.round(x / step);
  const lo = Math.ceil(c.min! / step - STEP_TOLERANCE);
  const hi = Math.floor(c.max! / step + STEP_TOLERANCE);
  k = Math.min(hi, Math.max(lo, k));
  const v = k * step;
  if (step >= 1 && Number.isInteger(step)) return v;
  const decimals = Math.min(15, Math.max(0, -Math.floor(Math.log10(step)) + 2));
  return Number(v.toFixed(decimals));
}

/** Stable SHA-256 of the schema's canonical JSON: banks and coordinator compare it at registration. */
export function schemaHash(schema: ConsortiumSchema): string {
  return createHash('sha256').update(canonicalJson(schema)).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

const TRUE = new Set(['1', 'true', 'yes', 't', 'y']);
const FALSE = new Set(['0', 'false', 'no', 'f', 'n']);

/** Parses one cell; returns the value or a reason string. Only an empty cell counts as missing. */
export function parseCell(c: SchemaColumn, raw: string): { value: number | string | null } | { reason: string } {
  if (!isModelled(c)) return { value: null };
  const s = raw.trim();
  if (s === '') return c.nullable ? { value: null } : { reason: 'missing value in a column that is not nullable' };
  switch (c.type) {
    case 'continuous':
    case 'integer': {
      const v = Number(s);
      if (!Number.isFinite(v)) return { reason: `'${clip(s)}' is not a number` };
      if (c.type === 'integer' && !Number.isInteger(v)) return { reason: `'${clip(s)}' is not an integer` };
      if (v < c.min! || v > c.max!) return { reason: `${v} is outside the declared bounds [${c.min}, ${c.max}]` };
      return { value: v };
    }
    case 'datetime': {
      const v = /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : Date.parse(s);
      if (!Number.isFinite(v)) return { reason: `'${clip(s)}' is not a date` };
      if (v < c.min! || v > c.max!) return { reason: `${new Date(v).toISOString()} is outside the declared bounds` };
      return { value: v };
    }
    case 'boolean': {
      const l = s.toLowerCase();
      if (TRUE.has(l)) return { value: 1 };
      if (FALSE.has(l)) return { value: 0 };
      return { reason: `'${clip(s)}' is not a boolean (use 0/1 or true/false)` };
    }
    case 'categorical':
      return c.categories!.includes(s) ? { value: s } : { reason: `'${clip(s)}' is not one of the schema's categories` };
  }
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

export interface RowProblem {
  line: number;
  /** Column name, or '' for a problem with the whole line (wrong field count). */
  column: string;
  reason: string;
}

/** Maps a CSV header onto the schema: index of each schema column in the file (-1 for absent id/pii). */
export function matchHeader(schema: ConsortiumSchema, header: readonly string[], file = 'CSV'): number[] {
  const pos = new Map(header.map((h, i) => [h, i]));
  const missing = schema.columns.filter((c) => isModelled(c) && !pos.has(c.name)).map((c) => c.name);
  if (missing.length) throw new SchemaError(`${file} does not match the consortium schema: missing column(s) ${missing.join(', ')} (header has: ${header.join(', ')})`);
  const known = new Set(schema.columns.map((c) => c.name));
  const extra = header.filter((h) => !known.has(h));
  if (extra.length) throw new SchemaError(`${file} does not match the consortium schema: column(s) ${extra.join(', ')} are not in the schema (declare them, with role 'id' or 'pii' if they must not be modelled)`);
  return schema.columns.map((c) => pos.get(c.name) ?? -1);
}

/** Parses one record into a Row, or the first problem found in it. */
export function parseRow(schema: ConsortiumSchema, index: readonly number[], values: readonly string[], fieldCount: number, line: number): Row | RowProblem {
  if (values.length !== fieldCount) return { line, column: '', reason: `expected ${fieldCount} fields, found ${values.length}` };
  const row: Row = new Array(schema.columns.length);
  for (let j = 0; j < schema.columns.length; j++) {
    const c = schema.columns[j]!;
    const i = index[j]!;
    if (i < 0 || !isModelled(c)) {
      row[j] = null;
      continue;
    }
    const r = parseCell(c, values[i]!);
    if ('reason' in r) return { line, column: c.name, reason: r.reason };
    row[j] = r.value;
  }
  return row;
}

export interface LoadedTable {
  rows: Row[];
  rejectedRows: number;
  /** The first problems (at most `keepProblems`); all of them went to onProblem. */
  problems: RowProblem[];
}

export interface LoadTableOptions {
  /** Refuse the file when more rows than this are bad (default: 1% of rows, at least 100). */
  maxProblems?: number;
  keepProblems?: number;
  onProblem?: (p: RowProblem) => void;
  separator?: Separator;
}

/**
 * Streams a bank CSV through the schema. Bad rows are skipped and reported (line, column, reason),
 * never stopping at the first; a header that does not match, or more bad rows than maxProblems,
 * refuses the whole file with a clear message.
 */
export async function loadTable(path: string, schema: ConsortiumSchema, opts: LoadTableOptions = {}): Promise<LoadedTable> {
  const csv = await openCsv(path, opts.separator ? { separator: opts.separator } : {});
  const index = matchHeader(schema, csv.header, path);
  const rows: Row[] = [];
  const problems: RowProblem[] = [];
  let rejected = 0;
  const keep = opts.keepProblems ?? 100;
  for await (const rec of csv.rows) {
    const r = parseRow(schema, index, rec.values, csv.header.length, rec.line);
    if (Array.isArray(r)) {
      rows.push(r);
      continue;
    }
    rejected++;
    if (problems.length < keep) problems.push(r);
    opts.onProblem?.(r);
    const limit = opts.maxProblems;
    if (limit !== undefined && rejected > limit) {
      throw new SchemaError(`${path}: more than ${limit} rows do not match the schema (latest: line ${r.line}, ${r.column ? `column ${r.column}: ` : ''}${r.reason}); refusing the file`);
    }
  }
  if (opts.maxProblems === undefined && rejected > Math.max(100, 0.01 * (rows.length + rejected))) {
    const p = problems[0]!;
    throw new SchemaError(`${path}: ${rejected} of ${rows.length + rejected} rows do not match the schema (first: line ${p.line}, ${p.column ? `column ${p.column}: ` : ''}${p.reason}); refusing the file`);
  }
  return { rows, rejectedRows: rejected, problems };
}

/** Turns a Row back into CSV cell values (datetime as ISO-8601, booleans as 0/1). */
export function formatRow(schema: ConsortiumSchema, row: Row): (string | number | null)[] {
  return schema.columns.map((c, j) => {
    const v = row[j];
    if (v === null || v === undefined) return null;
    if (c.type === 'datetime' && typeof v === 'number') return new Date(Math.round(v)).toISOString();
    return v;
  });
}
