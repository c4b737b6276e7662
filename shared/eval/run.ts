// File-level entry point: CSVs in, report.json + report.html out.
import { mkdir, writeFile, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { evaluate, type EvaluateOptions, type Report } from './report';
import { renderHtml } from './html';
import { loadEvaluationInput, readSchemaFile, type CsvOpener } from './load';

export interface EvaluateFilesOptions extends Omit<EvaluateOptions, 'onProgress'> {
  real: string;
  holdout: string;
  synthetic: string;
  target?: string;
  schema?: string;
  separator?: string;
  outDir: string;
  openCsv?: CsvOpener;
  /** Progress: a step name and the share of the whole run done (loading counts as the first 20%). */
  onProgress?: (step: string, done: number) => void;
}

/** Writes report.json and report.html atomically (temp file + rename); returns their paths. */
export async function writeReport(report: Report, outDir: string): Promise<{ jsonPath: string; htmlPath: string }> {
  await mkdir(outDir, { recursive: true });
  const jsonPath = resolve(join(outDir, 'report.json'));
  const htmlPath = resolve(join(outDir, 'report.html'));
  await writeFile(jsonPath + '.tmp', JSON.stringify(report, null, 2) + '\n');
  await rename(jsonPath + '.tmp', jsonPath);
  await writeFile(htmlPath + '.tmp', renderHtml(report));
  await rename(htmlPath + '.tmp', htmlPath);
  return { jsonPath, htmlPath };
}

export async function evaluateFiles(o: EvaluateFilesOptions): Promise<{ report: Report; jsonPath: string; htmlPath: string }> {
  const progress = o.onProgress ?? (() => {});
  const schema = o.schema ? await readSchemaFile(o.schema) : undefined;
  const share: Record<string, number> = { 'real data': 0, holdout: 0.1, synthetic: 0.13 };
  const t0 = performance.now();
  const input = await loadEvaluationInput(
    { real: o.real, holdout: o.holdout, synthetic: o.synthetic },
    { schema, target: o.target, separator: o.separator, openCsv: o.openCsv, onRows: (what, n) => progress(`reading ${what}: ${n} rows`, share[what] ?? 0) },
  );
  const loadSeconds = Math.round(performance.now() - t0) / 1000;
  const report = await evaluate(input, { ...o, onProgress: (s, d) => progress(s, 0.2 + 0.8 * d) });
  report.timings = { load: loadSeconds, ...report.timings };
  const paths = await writeReport(report, o.outDir);
  return { report, ...paths };
}
