// Columnar table used by every evaluation metric: built once from CSV rows, then metrics read typed
// arrays only. Numeric columns are Float64Array (NaN = missing); categorical columns are Int32Array
// codes into a category list shared by the real, holdout and synthetic tables of one evaluation,
// so code k means the same value in all three.

export type SchemaColumnType = 'continuous' | 'integer' | 'categorical' | 'boolean' | 'datetime';
export type SchemaRole = 'feature' | 'target' | 'id' | 'pii';

/** The consortium schema JSON (docs/ARCHITECTURE.md); only the fields the evaluator reads. */
export interface EvalSchemaColumn {
  name: string;
  type: SchemaColumnType;
  role?: SchemaRole;
  min?: number;
  max?: number;
  categories?: string[];
}
export interface EvalSchema {
  version?: number | string;
  name?: string;
  target?: string;
  columns: EvalSchemaColumn[];
}

export interface NumericColumn {
  kind: 'numeric';
  name: string;
  values: Float64Array;
}
export interface CategoricalColumn {
  kind: 'categorical';
  name: string;
  codes: Int32Array;
  /** Shared, growing dictionary: the same array object for every table of one evaluation. */
  categories: string[];
}
export type Column = NumericColumn | CategoricalColumn;

export interface Table {
  nRows: number;
  columns: Column[];
}

/** Which columns are evaluated and how; id/pii columns are dropped before any table is built. */
export interface ColumnSpec {
  name: string;
  kind: 'numeric' | 'categorical';
  /** Source type (schema or inferred) for the report. */
  type: SchemaColumnType;
}
export interface Metadata {
  columns: ColumnSpec[];
  /** Name of the target column (must be one of `columns`), when utility is evaluated. */
  target?: string;
  /** Columns excluded from every metric because their role is id or pii. */
  excluded: string[];
}

/** Distinct-value count above which an all-numeric column is inferred continuous rather than categorical. */
export const INFER_NUMERIC_MIN_DISTINCT = 20;
export const MISSING_CATEGORY = '(missing)';

const MISSING = new Set(['', 'na', 'nan', 'null', 'none', '?']);
export function isMissing(v: string | null | undefined): boolean {
  return v === null || v === undefined || MISSING.has(v.trim().toLowerCase());
}

/** Parses a cell of a numeric column; NaN for missing, throws for text that is not a number. */
export function parseNumericCell(raw: string, type: SchemaColumnType, column: string, line: number): number {
  if (isMissing(raw)) return Number.NaN;
  const s = raw.trim();
  if (type === 'datetime') {
    const n = Number(s);
    const t = Number.isFinite(n) ? n : Date.parse(s);
    if (!Number.isFinite(t)) throw new Error(`column "${column}" line ${line}: "${raw}" is not a date/time`);
    return t;
  }
  const n = Number(s);
  if (!Number.isFinite(n)) throw new Error(`column "${column}" line ${line}: "${raw}" is not a number`);
  return n;
}

/** Numeric kind for continuous/integer/datetime; categorical for categorical/boolean. */
export function kindOf(type: SchemaColumnType): 'numeric' | 'categorical' {
  return type === 'categorical' || type === 'boolean' ? 'categorical' : 'numeric';
}

/**
 * Builds evaluation metadata from a schema, checking it against the CSV header.
 * Throws a specific error for a schema column the header lacks or a bad target.
 */
export function metadataFromSchema(schema: EvalSchema, header: string[], target?: string): Metadata {
  if (!schema || !Array.isArray(schema.columns) || schema.columns.length === 0) {
    throw new Error('schema: "columns" must be a non-empty array');
  }
  const valid: SchemaColumnType[] = ['continuous', 'integer', 'categorical', 'boolean', 'datetime'];
  const cols: ColumnSpec[] = [];
  const excluded: string[] = [];
  for (const c of schema.columns) {
    if (!valid.includes(c.type)) throw new Error(`schema: column "${c.name}" has unknown type "${String(c.type)}"`);
    if (!header.includes(c.name)) throw new Error(`schema: column "${c.name}" is not in the CSV header (${header.join(', ')})`);
    if (c.role === 'id' || c.role === 'pii') excluded.push(c.name);
    else cols.push({ name: c.name, kind: kindOf(c.type), type: c.type });
  }
  const t = target ?? schema.target ?? schema.columns.find((c) => c.role === 'target')?.name;
  return finishMetadata(cols, excluded, t);
}

function finishMetadata(columns: ColumnSpec[], excluded: string[], target?: string): Metadata {
  if (target !== undefined) {
    if (excluded.includes(target)) throw new Error(`target "${target}" is an id/pii column and cannot be a target`);
    if (!columns.some((c) => c.name === target)) {
      throw new Error(`target "${target}" is not a column (columns: ${columns.map((c) => c.name).join(', ')})`);
    }
  }
  if (columns.length === 0) throw new Error('no columns left to evaluate after excluding id/pii columns');
  return { columns, excluded, target };
}

/**
 * Infers column kinds from a sample of the real data: a column is numeric when every non-missing
 * value parses as a finite number and it has more than INFER_NUMERIC_MIN_DISTINCT distinct values;
 * otherwise categorical. A column named "id"/"ID" (case-insensitive) whose values are all distinct
 * is treated as an id column and excluded. The target column is always categorical.
 */
export function inferMetadata(header: string[], sampleRows: string[][], target?: string): Metadata {
  const cols: ColumnSpec[] = [];
  const excluded: string[] = [];
  header.forEach((name, j) => {
    const distinct = new Set<string>();
    let allNumeric = true;
    let nonMissing = 0;
    for (const r of sampleRows) {
      const v = r[j] ?? '';
      if (isMissing(v)) continue;
      nonMissing++;
      if (distinct.size <= 100_000) distinct.add(v.trim());
      if (allNumeric && !Number.isFinite(Number(v.trim()))) allNumeric = false;
    }
    if (/^id$/i.test(name) && nonMissing > 0 && distinct.size === nonMissing) {
      excluded.push(name);
      return;
    }
    const numeric = name !== target && allNumeric && nonMissing > 0 && distinct.size > INFER_NUMERIC_MIN_DISTINCT;
    cols.push({ name, kind: numeric ? 'numeric' : 'categorical', type: numeric ? 'continuous' : 'categorical' });
  });
  return finishMetadata(cols, excluded, target);
}

/**
 * Incrementally builds tables that share category dictionaries. Build the real table first; the
 * holdout and synthetic tables then reuse (and extend) its dictionaries.
 */
export class TableBuilderFactory {
  private readonly dicts: Map<string, { list: string[]; index: Map<string, number> }> = new Map();
  constructor(readonly metadata: Metadata) {
    for (const c of metadata.columns) if (c.kind === 'categorical') this.dicts.set(c.name, { list: [], index: new Map() });
  }

  /** Starts a table; `header` maps metadata columns to CSV positions. */
  start(header: string[], what = 'table'): RowSink {
    const pos = this.metadata.columns.map((c) => {
      const j = header.indexOf(c.name);
      if (j < 0) throw new Error(`${what}: column "${c.name}" is missing from the header (${header.join(', ')})`);
      return j;
    });
    return new RowSink(this.metadata, pos, this.dicts, what);
  }

  /** Builds a table from in-memory string rows (tests, small inputs). */
  fromRows(header: string[], rows: string[][], what = 'table'): Table {
    const sink = this.start(header, what);
    rows.forEach((r, i) => sink.push(r, i + 2));
    return sink.finish();
  }
}

export class RowSink {
  private n = 0;
  private cap = 1024;
  private num: Float64Array[];
  private cat: Int32Array[];
  constructor(
    private readonly meta: Metadata,
    private readonly pos: number[],
    private readonly dicts: Map<string, { list: string[]; index: Map<string, number> }>,
    private readonly what: string,
  ) {
    this.num = meta.columns.map((c) => (c.kind === 'numeric' ? new Float64Array(this.cap) : new Float64Array(0)));
    this.cat = meta.columns.map((c) => (c.kind === 'categorical' ? new Int32Array(this.cap) : new Int32Array(0)));
  }

  push(values: string[], line: number): void {
    if (this.n === this.cap) this.grow();
    const cols = this.meta.columns;
    for (let k = 0; k < cols.length; k++) {
      const c = cols[k]!;
      const raw = values[this.pos[k]!];
      if (raw === undefined) throw new Error(`${this.what} line ${line}: row has ${values.length} fields, expected at least ${this.pos[k]! + 1}`);
      if (c.kind === 'numeric') {
        this.num[k]![this.n] = parseNumericCell(raw, c.type, c.name, line);
      } else {
        const v = isMissing(raw) ? MISSING_CATEGORY : raw.trim();
        const d = this.dicts.get(c.name)!;
        let code = d.index.get(v);
        if (code === undefined) {
          code = d.list.length;
          d.list.push(v);
          d.index.set(v, code);
        }
        this.cat[k]![this.n] = code;
      }
    }
    this.n++;
  }

  private grow(): void {
    this.cap *= 2;
    this.num = this.num.map((a) => {
      if (a.length === 0) return a;
      const b = new Float64Array(this.cap);
      b.set(a);
      return b;
    });
    this.cat = this.cat.map((a) => {
      if (a.length === 0) return a;
      const b = new Int32Array(this.cap);
      b.set(a);
      return b;
    });
  }

  finish(): Table {
    const n = this.n;
    const columns: Column[] = this.meta.columns.map((c, k) =>
      c.kind === 'numeric'
        ? { kind: 'numeric', name: c.name, values: this.num[k]!.slice(0, n) }
        : { kind: 'categorical', name: c.name, codes: this.cat[k]!.slice(0, n), categories: this.dicts.get(c.name)!.list },
    );
    return { nRows: n, columns };
  }
}

export function column(t: Table, name: string): Column {
  const c = t.columns.find((x) => x.name === name);
  if (!c) throw new Error(`no column "${name}"`);
  return c;
}

/** Rows of `t` at `idx`, as a new table (categories stay shared). */
export function takeRows(t: Table, idx: ArrayLike<number>): Table {
  const n = idx.length;
  const columns: Column[] = t.columns.map((c) => {
    if (c.kind === 'numeric') {
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) v[i] = c.values[idx[i]!]!;
      return { ...c, values: v };
    }
    const v = new Int32Array(n);
    for (let i = 0; i < n; i++) v[i] = c.codes[idx[i]!]!;
    return { ...c, codes: v };
  });
  return { nRows: n, columns };
}

/** Concatenates tables with identical column layout. */
export function concatTables(a: Table, b: Table): Table {
  const columns: Column[] = a.columns.map((c, k) => {
    const d = b.columns[k]!;
    if (c.kind === 'numeric' && d.kind === 'numeric') {
      const v = new Float64Array(a.nRows + b.nRows);
      v.set(c.values);
      v.set(d.values, a.nRows);
      return { ...c, values: v };
    }
    if (c.kind === 'categorical' && d.kind === 'categorical') {
      const v = new Int32Array(a.nRows + b.nRows);
      v.set(c.codes);
      v.set(d.codes, a.nRows);
      return { ...c, codes: v };
    }
    throw new Error(`concatTables: column "${c.name}" kinds differ`);
  });
  return { nRows: a.nRows + b.nRows, columns };
}

/** Table without the named column. */
export function dropColumn(t: Table, name: string): Table {
  return { nRows: t.nRows, columns: t.columns.filter((c) => c.name !== name) };
}
