// Builds the evaluation's columnar tables from CSV files, streaming rows through shared/data's CSV
// reader (this module does no CSV parsing of its own). Column kinds come from the consortium
// schema when given, otherwise they are inferred from the first INFER_SAMPLE_ROWS rows of the real
// file (see table.ts inferMetadata). Holdout and synthetic share the real file's category codes.
// Each file's separator is detected from its own header unless one is given.
import { readFile } from 'node:fs/promises';
import { openCsv, type Separator } from '../data/csv';
import { inferMetadata, metadataFromSchema, TableBuilderFactory, type EvalSchema, type Metadata, type Table } from './table';
import type { EvaluateInput } from './report';

export const INFER_SAMPLE_ROWS = 20_000;

export interface CsvRow {
  line: number;
  values: string[];
}
export interface CsvSource {
  header: string[];
  rows: AsyncIterable<CsvRow>;
}
export type CsvOpener = (path: string, opts?: { separator?: Separator }) => CsvSource | Promise<CsvSource>;

export interface LoadOptions {
  schema?: EvalSchema;
  target?: string;
  /** ',' ';' or a tab; detected from each file's header when omitted. */
  separator?: string;
  /** CSV opener; defaults to shared/data/csv openCsv. */
  openCsv?: CsvOpener;
  /** Progress: which file and rows read so far (called every 50k rows and at the end). */
  onRows?: (what: string, rows: number) => void;
}

/** Reads and checks a consortium schema JSON file. */
export async function readSchemaFile(path: string): Promise<EvalSchema> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read schema ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`schema ${path} is not valid JSON: ${(e as Error).message}`);
  }
  const s = json as EvalSchema;
  if (!s || typeof s !== 'object' || !Array.isArray(s.columns)) throw new Error(`schema ${path}: expected an object with a "columns" array`);
  s.columns.forEach((c, i) => {
    if (!c || typeof c.name !== 'string' || c.name === '') throw new Error(`schema ${path}: columns[${i}] has no "name"`);
    if (typeof c.type !== 'string') throw new Error(`schema ${path}: column "${c.name}" has no "type"`);
  });
  return s;
}

function checkSeparator(sep: string | undefined): Separator | undefined {
  if (sep === undefined) return undefined;
  const s = sep === '\\t' || sep === 'tab' ? '\t' : sep;
  if (s !== ',' && s !== ';' && s !== '\t') throw new Error(`separator must be ",", ";" or a tab, got "${sep}"`);
  return s;
}

async function open(opener: CsvOpener, path: string, separator?: Separator): Promise<CsvSource> {
  try {
    return await opener(path, separator ? { separator } : undefined);
  } catch (e) {
    throw new Error(`cannot open ${path}: ${(e as Error).message}`);
  }
}

async function fill(
  factory: TableBuilderFactory,
  src: CsvSource,
  what: string,
  path: string,
  buffered: CsvRow[],
  inferred: boolean,
  onRows?: (what: string, rows: number) => void,
): Promise<Table> {
  const sink = factory.start(src.header, `${what} (${path})`);
  const hint = inferred ? ' (column kinds were inferred from the real file; pass a schema to declare them)' : '';
  let n = 0;
  const push = (r: CsvRow): void => {
    if (r.values.length === 1 && r.values[0] === '' && src.header.length > 1) return; // blank line
    try {
      sink.push(r.values, r.line);
    } catch (e) {
      throw new Error(`${what} ${path}: ${(e as Error).message}${hint}`);
    }
    n++;
    if (n % 50_000 === 0) onRows?.(what, n);
  };
  for (const r of buffered) push(r);
  for await (const r of src.rows) push(r);
  onRows?.(what, n);
  return sink.finish();
}

/**
 * Loads real (train), holdout and synthetic CSVs into tables sharing one metadata. Throws a
 * specific error for a missing file, a header missing a column, or a value that does not parse.
 */
export async function loadEvaluationInput(
  paths: { real: string; holdout: string; synthetic: string },
  opts: LoadOptions = {},
): Promise<EvaluateInput> {
  const opener = opts.openCsv ?? openCsv;
  const sep = checkSeparator(opts.separator);
  const realSrc = await open(opener, paths.real, sep);
  let metadata: Metadata;
  const buffered: CsvRow[] = [];
  const it = realSrc.rows[Symbol.asyncIterator]();
  if (opts.schema) {
    metadata = metadataFromSchema(opts.schema, realSrc.header, opts.target);
  } else {
    while (buffered.length < INFER_SAMPLE_ROWS) {
      const r = await it.next();
      if (r.done) break;
      buffered.push(r.value);
    }
    if (buffered.length === 0) throw new Error(`real data ${paths.real} has a header but no rows`);
    metadata = inferMetadata(realSrc.header, buffered.map((r) => r.values), opts.target);
  }
  const factory = new TableBuilderFactory(metadata);
  const rest: CsvSource = { header: realSrc.header, rows: { [Symbol.asyncIterator]: () => it } };
  const real = await fill(factory, rest, 'real data', paths.real, buffered, !opts.schema, opts.onRows);
  const holdout = await fill(factory, await open(opener, paths.holdout, sep), 'holdout', paths.holdout, [], !opts.schema, opts.onRows);
  const synthetic = await fill(factory, await open(opener, paths.synthetic, sep), 'synthetic', paths.synthetic, [], !opts.schema, opts.onRows);
  return { real, holdout, synthetic, metadata };
}
