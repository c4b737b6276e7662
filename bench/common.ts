// Pieces every benchmark shares: the reference transformer layout and synthetic rows of
// bench:train (so step timings compare across benchmarks), a median, and the one writer of
// BENCHMARKS.md sections.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { OutputSpan } from '../shared/model';
import { Rng } from '../shared/tensor/random';

/** 5 continuous columns (tanh + 10 modes, as CTGAN's mode-specific normalisation) + 5 categoricals (2/4/7/12/40). */
export function benchLayout(): OutputSpan[] {
  const spans: OutputSpan[] = [];
  let o = 0;
  for (let i = 0; i < 5; i++) {
    spans.push({ column: `num${i}`, kind: 'tanh', dim: 1, offset: o++ });
    spans.push({ column: `num${i}`, kind: 'softmax', dim: 10, offset: o });
    o += 10;
  }
  [2, 4, 7, 12, 40].forEach((d, i) => {
    spans.push({ column: `cat${i}`, kind: 'softmax', dim: d, offset: o });
    o += d;
  });
  return spans;
}

/** n encoded rows for a layout: uniform scalars, skewed one-hots (seeded). */
export function syntheticRows(spans: OutputSpan[], n: number): Float32Array {
  const d = spans.reduce((s, x) => s + x.dim, 0);
  const r = new Rng(1);
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (const s of spans) {
      if (s.kind === 'tanh') out[i * d + s.offset] = r.next() * 2 - 1;
      else out[i * d + s.offset + Math.min(s.dim - 1, Math.floor((-Math.log(r.nextOpen()) * s.dim) / 3))] = 1;
    }
  }
  return out;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Replaces the `## <title>` section of BENCHMARKS.md (up to the next `## ` heading) with `section`,
 * which starts with that heading, or appends it; other sections are kept. Returns the file path.
 */
export function writeBenchmarkSection(title: string, section: string, file = 'BENCHMARKS.md'): string {
  const heading = `## ${title}\n`;
  if (!section.startsWith(heading)) throw new Error(`a benchmark section must start with '${heading.trim()}'`);
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const start = old.startsWith(heading) ? 0 : old.indexOf(`\n${heading}`) + 1;
  let out: string;
  if (start > 0 || old.startsWith(heading)) {
    const next = old.indexOf('\n## ', start);
    out = old.slice(0, start) + section.trimEnd() + '\n' + (next < 0 ? '' : '\n' + old.slice(next + 1));
  } else {
    out = old.trimEnd() + '\n\n' + section.trimEnd() + '\n';
  }
  writeFileSync(file, out.replace(/\n{3,}/g, '\n\n'));
  return file;
}

/** A benchmark's command line: `args` as given, and `arg(name, default)`, the value after `--name` or the default. */
export function commandLine(argv: readonly string[] = process.argv.slice(2)): { args: readonly string[]; arg: (name: string, fallback: string) => string } {
  return {
    args: argv,
    arg: (name, fallback) => {
      const i = argv.indexOf(name);
      return i >= 0 ? argv[i + 1]! : fallback;
    },
  };
}
