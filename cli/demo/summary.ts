// The demo's real-vs-synthetic comparison: per-column means (numeric) or category frequencies
// (categorical), and the fraud rate. Computed locally from files on this machine; the demo plays
// every bank, so pooling their CSVs here is the demo operator looking at their own test data.
import { readFileSync } from 'node:fs';
import { openCsv } from '../../shared/data/csv';
import { validateSchema, type ConsortiumSchema } from '../../shared/data/schema';

interface ColumnStats {
  kind: 'numeric' | 'categorical';
  n: number;
  mean?: number;
  std?: number;
  frequencies?: Record<string, number>;
}

export interface ComparisonSummary {
  realRows: number;
  syntheticRows: number;
  target?: string;
  targetRate?: { real: number; synthetic: number };
  columns: Record<string, { real: ColumnStats; synthetic: ColumnStats }>;
}

/** `where`: only rows whose column has this value (e.g. the fraud rows), in both the real and the synthetic files. */
export async function summarizeComparison(schemaPath: string, realFiles: string[], syntheticFile: string, where?: { column: string; value: string }): Promise<ComparisonSummary> {
  const schema = validateSchema(JSON.parse(readFileSync(schemaPath, 'utf8')));
  const real = await columnStats(schema, realFiles, where);
  const synthetic = await columnStats(schema, [syntheticFile], where);
  const columns: ComparisonSummary['columns'] = {};
  for (const c of schema.columns) {
    if (c.role === 'id' || c.role === 'pii') continue;
    columns[c.name] = { real: real.stats.get(c.name)!, synthetic: synthetic.stats.get(c.name)! };
  }
  const target = schema.target;
  const rate = (s: ColumnStats | undefined): number => {
    if (!s) return NaN;
    if (s.kind === 'numeric') return s.mean ?? NaN;
    const f = s.frequencies ?? {};
    return f['1'] ?? f['true'] ?? f['yes'] ?? 0;
  };
  return {
    realRows: real.rows,
    syntheticRows: synthetic.rows,
    ...(target ? { target, targetRate: { real: rate(real.stats.get(target)), synthetic: rate(synthetic.stats.get(target)) } } : {}),
    columns,
  };
}

/** The least frequent value of the schema's target among `s`'s real rows (the fraud class), if any. */
export function minorityClass(s: ComparisonSummary): string | undefined {
  const f = s.target ? s.columns[s.target]?.real.frequencies : undefined;
  if (!f || Object.keys(f).length < 2) return undefined;
  return Object.entries(f).sort((a, b) => a[1] - b[1])[0]![0];
}

async function columnStats(schema: ConsortiumSchema, files: string[], where?: { column: string; value: string }): Promise<{ rows: number; stats: Map<string, ColumnStats> }> {
  const modelled = schema.columns.filter((c) => c.role !== 'id' && c.role !== 'pii');
  const numeric = new Map<string, { s: number; s2: number; n: number }>();
  const counts = new Map<string, Map<string, number>>();
  for (const c of modelled) {
    if (c.type === 'categorical' || c.type === 'boolean') counts.set(c.name, new Map());
    else numeric.set(c.name, { s: 0, s2: 0, n: 0 });
  }
  let rows = 0;
  for (const file of files) {
    const csv = await openCsv(file);
    const index = new Map(csv.header.map((h, i) => [h, i]));
    const whereAt = where ? index.get(where.column) : undefined;
    if (where && whereAt === undefined) throw new Error(`${file} has no column '${where.column}'`);
    for await (const rec of csv.rows) {
      if (where && rec.values[whereAt!] !== where.value) continue;
      rows += 1;
      for (const c of modelled) {
        const i = index.get(c.name);
        if (i === undefined) continue;
        const raw = rec.values[i] ?? '';
        if (raw === '') continue;
        const num = numeric.get(c.name);
        if (num) {
          const v = Number(raw);
          if (Number.isFinite(v)) {
            num.s += v;
            num.s2 += v * v;
            num.n += 1;
          }
        } else {
          const m = counts.get(c.name)!;
          m.set(raw, (m.get(raw) ?? 0) + 1);
        }
      }
    }
  }
  const stats = new Map<string, ColumnStats>();
  for (const [name, { s, s2, n }] of numeric) {
    const mean = n ? s / n : NaN;
    stats.set(name, { kind: 'numeric', n, mean, std: n ? Math.sqrt(Math.max(0, s2 / n - mean * mean)) : NaN });
  }
  for (const [name, m] of counts) {
    const n = [...m.values()].reduce((a, b) => a + b, 0);
    const frequencies: Record<string, number> = {};
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1])) frequencies[k] = v / n;
    stats.set(name, { kind: 'categorical', n, frequencies });
  }
  return { rows, stats };
}

/**
 * A compact text table for the terminal. `only`: the rows were restricted to this description
 * (e.g. "is_fraud = 1"), which then heads the table instead of the target's rate.
 */
export function formatSummary(s: ComparisonSummary, only?: string): string {
  const lines: string[] = [];
  lines.push(only ? `${only} rows: real ${s.realRows}   synthetic ${s.syntheticRows}` : `real rows: ${s.realRows}   synthetic rows: ${s.syntheticRows}`);
  if (!only && s.target && s.targetRate) {
    lines.push(`${s.target} rate: real ${(100 * s.targetRate.real).toFixed(2)}%   synthetic ${(100 * s.targetRate.synthetic).toFixed(2)}%`);
  }
  lines.push('');
  lines.push(`${'column'.padEnd(22)} ${'real'.padStart(28)}   ${'synthetic'.padStart(28)}`);
  for (const [name, { real, synthetic }] of Object.entries(s.columns)) {
    if (real.kind === 'numeric') {
      const f = (c: ColumnStats) => `mean ${fmtNum(c.mean)} sd ${fmtNum(c.std)}`;
      lines.push(`${name.padEnd(22)} ${f(real).padStart(28)}   ${f(synthetic).padStart(28)}`);
    } else {
      const top = Object.keys(real.frequencies ?? {}).slice(0, 3);
      const f = (c: ColumnStats) => top.map((k) => `${k}:${(100 * (c.frequencies?.[k] ?? 0)).toFixed(0)}%`).join(' ');
      lines.push(`${name.padEnd(22)} ${f(real).padStart(28)}   ${f(synthetic).padStart(28)}`);
    }
  }
  return lines.join('\n');
}

function fmtNum(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2);
}
