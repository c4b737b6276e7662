// CSV reading and writing (RFC 4180). Reading is streamed: a bank's file is never held in memory
// as text, rows come out one at a time with the line number they started on, so errors can name
// the exact line. Quoted fields may contain separators, doubled quotes and line breaks; CRLF and a
// UTF-8 byte-order mark are accepted. The separator (',' ';' or tab) is detected from the header
// unless given. Writing is atomic: a temporary file in the same directory, fsync, then rename, so
// a reader never sees half a file.
import { createReadStream, closeSync, fsyncSync, openSync, renameSync, writeSync, unlinkSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type Separator = ',' | ';' | '\t';

export interface CsvRecord {
  /** 1-based line number on which the record starts (the header is line 1). */
  line: number;
  values: string[];
}

export interface CsvSource {
  header: string[];
  separator: Separator;
  rows: AsyncIterable<CsvRecord>;
}

export class CsvError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
    this.name = 'CsvError';
  }
}

/** Picks the separator that splits the header line into the most fields (ties: ',' first). */
export function detectSeparator(headerLine: string): Separator {
  let best: Separator = ',';
  let bestCount = -1;
  for (const sep of [',', ';', '\t'] as const) {
    let n = 0;
    let quoted = false;
    for (const ch of headerLine) {
      if (ch === '"') quoted = !quoted;
      else if (ch === sep && !quoted) n++;
    }
    if (n > bestCount) {
      best = sep;
      bestCount = n;
    }
  }
  return best;
}

/**
 * Incremental RFC 4180 tokenizer: feed it chunks, it emits complete records. Kept as a small
 * state machine so a quoted field may span chunk boundaries and lines.
 */
class CsvTokenizer {
  private field = '';
  private record: string[] = [];
  private quoted = false;
  private afterQuote = false; // just read the closing quote of a quoted field
  private fieldStarted = false;
  private line = 1;
  private recordLine = 1;
  private pendingCr = false;
  readonly out: CsvRecord[] = [];

  constructor(private readonly sep: string) {}

  feed(chunk: string): void {
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i]!;
      if (this.pendingCr) {
        this.pendingCr = false;
        if (ch === '\n') continue; // CRLF: the CR already ended the record
      }
      if (this.quoted) {
        if (ch === '"') {
          if (chunk[i + 1] === '"') {
            this.field += '"';
            i++;
          } else if (i + 1 === chunk.length) {
            // Cannot see the next char yet: treat as closing; a following '"' re-opens below.
            this.quoted = false;
            this.afterQuote = true;
          } else {
            this.quoted = false;
            this.afterQuote = true;
          }
        } else {
          if (ch === '\n') this.line++;
          this.field += ch;
        }
        continue;
      }
      if (ch === '"') {
        if (this.afterQuote) {
          // A doubled quote split across chunks: it was an escaped quote after all.
          this.field += '"';
          this.quoted = true;
          this.afterQuote = false;
          continue;
        }
        if (this.field === '' && !this.fieldStarted) {
          this.quoted = true;
          this.fieldStarted = true;
          continue;
        }
        throw new CsvError(`line ${this.line}: stray quote inside an unquoted field`, this.line);
      }
      if (ch === this.sep) {
        this.endField();
        continue;
      }
      if (ch === '\n' || ch === '\r') {
        this.endRecord();
        this.line++;
        this.recordLine = this.line;
        if (ch === '\r') this.pendingCr = true;
        continue;
      }
      if (this.afterQuote) throw new CsvError(`line ${this.line}: unexpected character after a closing quote`, this.line);
      this.field += ch;
      this.fieldStarted = true;
    }
  }

  end(): void {
    if (this.quoted) throw new CsvError(`line ${this.recordLine}: quoted field is never closed`, this.recordLine);
    if (this.fieldStarted || this.field !== '' || this.record.length > 0 || this.afterQuote) this.endRecord();
  }

  private endField(): void {
    this.record.push(this.field);
    this.field = '';
    this.afterQuote = false;
    this.fieldStarted = false;
  }

  private endRecord(): void {
    this.endField();
    const values = this.record;
    this.record = [];
    // A completely empty line is skipped (common at the end of files).
    if (!(values.length === 1 && values[0] === '')) this.out.push({ line: this.recordLine, values });
  }
}

async function readHeaderLine(path: string): Promise<string> {
  const fh = await openFile(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    let text = buf.subarray(0, bytesRead).toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const nl = text.search(/\r|\n/);
    return nl < 0 ? text : text.slice(0, nl);
  } finally {
    await fh.close();
  }
}

/**
 * Opens a CSV for streaming. The header is read eagerly (so a missing or empty file fails here,
 * with its path); rows stream as they are iterated. Each record's `values` has whatever number of
 * fields the line had: checking the count is the schema's job, so it can report the line.
 */
export async function openCsv(path: string, opts: { separator?: Separator; highWaterMark?: number } = {}): Promise<CsvSource> {
  const headerLine = await readHeaderLine(path);
  if (headerLine.trim() === '') throw new CsvError(`${path}: empty file or empty header line`, 1);
  const separator = opts.separator ?? detectSeparator(headerLine);
  const headTok = new CsvTokenizer(separator);
  headTok.feed(headerLine);
  headTok.end();
  const header = headTok.out[0]!.values.map((h) => h.trim());
  const seen = new Set<string>();
  for (const h of header) {
    if (h === '') throw new CsvError(`${path}: the header has an empty column name`, 1);
    if (seen.has(h)) throw new CsvError(`${path}: the header names column '${h}' twice`, 1);
    seen.add(h);
  }
  const rows: AsyncIterable<CsvRecord> = {
    async *[Symbol.asyncIterator]() {
      const tok = new CsvTokenizer(separator);
      let first = true;
      let headerSkipped = false;
      const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: opts.highWaterMark ?? 1 << 20 });
      try {
        for await (const chunk of stream as AsyncIterable<string>) {
          let text = chunk;
          if (first && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
          first = false;
          tok.feed(text);
          // The first record is the header: drop it.
          for (const r of tok.out.splice(0)) {
            if (!headerSkipped) headerSkipped = true;
            else yield r;
          }
        }
        tok.end();
        for (const r of tok.out.splice(0)) {
          if (!headerSkipped) headerSkipped = true;
          else yield r;
        }
      } finally {
        stream.destroy();
      }
    },
  };
  return { header, separator, rows };
}

/** Parses a whole CSV text (small inputs, tests). The first record is the header. */
export function parseCsvText(text: string, opts: { separator?: Separator } = {}): { header: string[]; rows: CsvRecord[] } {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const nl = text.search(/\r|\n/);
  const sep = opts.separator ?? detectSeparator(nl < 0 ? text : text.slice(0, nl));
  const tok = new CsvTokenizer(sep);
  tok.feed(text);
  tok.end();
  const [head, ...rows] = tok.out;
  if (!head) throw new CsvError('empty CSV', 1);
  return { header: head.values.map((h) => h.trim()), rows };
}

/** One CSV line (no line break); quotes a field only when it needs it. */
export function formatCsvLine(values: readonly unknown[], sep: Separator = ','): string {
  return values
    .map((v) => {
      if (v === null || v === undefined) return '';
      const s = typeof v === 'number' ? formatNumber(v) : String(v);
      return /["\r\n]/.test(s) || s.includes(sep) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
    })
    .join(sep);
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`refusing to write a non-finite number (${v}) to CSV`);
  if (Number.isInteger(v)) return String(v);
  // Short but lossless enough for synthetic data: 6 significant decimals after the point.
  return String(Number(v.toPrecision(10)));
}

/**
 * Writes header + rows atomically (temp file in the same directory, fsync, rename). Rows are
 * written in blocks so memory stays flat for large outputs.
 */
export function writeCsv(path: string, header: readonly string[], rows: Iterable<readonly unknown[]>, sep: Separator = ','): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    let block: string[] = [formatCsvLine(header, sep)];
    for (const r of rows) {
      block.push(formatCsvLine(r, sep));
      if (block.length >= 4096) {
        writeSync(fd, block.join('\n') + '\n');
        block = [];
      }
    }
    if (block.length) writeSync(fd, block.join('\n') + '\n');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to clean */
    }
    throw e;
  }
}
