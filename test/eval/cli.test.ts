// End-to-end: the `evaluate` command on small CSV files, through commander and shared/data's CSV reader.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Command } from 'commander';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from '../../cli/commands/evaluate';
import { getPath, REPORT_CONTRACT_KEYS, UTILITY_CONTRACT_KEYS } from '../../shared/eval/report';
import { genRows, HEADER } from './helpers';

let dir: string;
const csv = (rows: string[][], sep = ','): string => [HEADER, ...rows].map((r) => r.join(sep)).join('\n') + '\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsynth-eval-cli-'));
  await writeFile(join(dir, 'train.csv'), csv(genRows(800, 1, 0)));
  await writeFile(join(dir, 'holdout.csv'), csv(genRows(400, 2, 10_000)));
  await writeFile(join(dir, 'syn.csv'), csv(genRows(800, 3, 20_000), ';'));
  await writeFile(join(dir, 'bad.csv'), csv(genRows(50, 4)).replace(/^id,age,income/, 'id,age,salary'));
  await writeFile(
    join(dir, 'schema.json'),
    JSON.stringify({
      version: 1,
      name: 'test',
      target: 'fraud',
      columns: [
        { name: 'id', type: 'integer', role: 'id' },
        { name: 'age', type: 'continuous' },
        { name: 'income', type: 'continuous' },
        { name: 'balance', type: 'continuous', role: 'pii' },
        { name: 'segment', type: 'categorical' },
        { name: 'region', type: 'categorical' },
        { name: 'fraud', type: 'boolean', role: 'target' },
      ],
    }),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]): Promise<string[]> {
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const program = new Command().exitOverride();
    register(program);
    await program.parseAsync(['node', 'fedsynth', 'evaluate', ...args]);
  } finally {
    spy.mockRestore();
    errSpy.mockRestore();
  }
  return out.join('').trimEnd().split('\n');
}

describe('fedsynth evaluate', () => {
  it('writes report.json and report.html and prints the report path last', async () => {
    const outDir = join(dir, 'report');
    const lines = await run([
      '--real', join(dir, 'train.csv'), '--holdout', join(dir, 'holdout.csv'), '--synthetic', join(dir, 'syn.csv'),
      '--target', 'fraud', '--out', outDir, '--privacy-sample', '200',
    ]);
    const last = lines[lines.length - 1]!;
    expect(last).toBe(join(outDir, 'report.json'));
    const report = JSON.parse(await readFile(last, 'utf8')) as Record<string, unknown>;
    for (const k of [...REPORT_CONTRACT_KEYS, ...UTILITY_CONTRACT_KEYS]) {
      const v = getPath(report, k) as number;
      expect(v, k).toBeGreaterThanOrEqual(0);
      expect(v, k).toBeLessThanOrEqual(1);
    }
    expect(getPath(report, 'inputs.excluded')).toEqual(['id']);
    const html = await readFile(join(outDir, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('honours a schema: id and pii columns are excluded, target from the schema', async () => {
    const outDir = join(dir, 'report-schema');
    const lines = await run([
      '--real', join(dir, 'train.csv'), '--holdout', join(dir, 'holdout.csv'), '--synthetic', join(dir, 'syn.csv'),
      '--schema', join(dir, 'schema.json'), '--out', outDir, '--privacy-sample', '200',
    ]);
    const report = JSON.parse(await readFile(lines[lines.length - 1]!, 'utf8')) as { inputs: { excluded: string[]; target: string; columns: { name: string }[] } };
    expect(report.inputs.excluded).toEqual(['id', 'balance']);
    expect(report.inputs.target).toBe('fraud');
    expect(report.inputs.columns.map((c) => c.name)).toEqual(['age', 'income', 'segment', 'region', 'fraud']);
  });

  it('fails with a specific message when the synthetic file lacks a column', async () => {
    await expect(
      run(['--real', join(dir, 'train.csv'), '--holdout', join(dir, 'holdout.csv'), '--synthetic', join(dir, 'bad.csv'), '--out', join(dir, 'r3')]),
    ).rejects.toThrow(/synthetic .*column "income" is missing from the header/);
    expect(existsSync(join(dir, 'r3', 'report.json'))).toBe(false);
  });

  it('scores the class --positive-class names one-vs-rest on a multi-class target, says which, and warns when it has few rows', async () => {
    const outDir = join(dir, 'report-segment');
    const lines = await run([
      '--real', join(dir, 'train.csv'), '--holdout', join(dir, 'holdout.csv'), '--synthetic', join(dir, 'syn.csv'),
      '--target', 'segment', '--positive-class', 'silver', '--out', outDir, '--privacy-sample', '200',
    ]);
    const report = JSON.parse(await readFile(lines[lines.length - 1]!, 'utf8')) as { utility: { positiveClass: string; holdoutPositives: number; holdoutRows: number }; warnings: string[] };
    expect(report.utility.positiveClass).toBe('silver');
    expect(report.utility.holdoutPositives).toBeGreaterThan(30);
    expect(lines.some((l) => l.startsWith(`utility (class "silver" vs rest, ${report.utility.holdoutPositives} of ${report.utility.holdoutRows} holdout rows): GBDT AUC TSTR `))).toBe(true);
    expect(report.warnings.some((w) => w.includes('silver'))).toBe(false);
    // A tiny holdout: the figures come with a warning that names the class and the count.
    await writeFile(join(dir, 'holdout-small.csv'), csv(genRows(60, 5, 50_000)));
    const small = await run([
      '--real', join(dir, 'train.csv'), '--holdout', join(dir, 'holdout-small.csv'), '--synthetic', join(dir, 'syn.csv'),
      '--target', 'segment', '--positive-class', 'gold', '--out', join(dir, 'report-small'), '--privacy-sample', '50',
    ]);
    const r2 = JSON.parse(await readFile(small[small.length - 1]!, 'utf8')) as { utility: { holdoutPositives: number }; warnings: string[] };
    expect(r2.utility.holdoutPositives).toBeLessThan(30);
    expect(r2.warnings).toContain(`the holdout has ${r2.utility.holdoutPositives} rows of the class "gold" (one-vs-rest of a multi-class target; --positive-class picks another): AUC, recall and precision on so few rows are mostly noise`);
    await expect(
      run(['--real', join(dir, 'train.csv'), '--holdout', join(dir, 'holdout.csv'), '--synthetic', join(dir, 'syn.csv'), '--target', 'segment', '--positive-class', 'platinum', '--out', join(dir, 'r5')]),
    ).rejects.toThrow(/positive class "platinum" does not occur in the real data's target "segment" \(values: bronze, gold, silver\)/);
  });

  it('rejects an unknown target column', async () => {
    await expect(
      run(['--real', join(dir, 'train.csv'), '--holdout', join(dir, 'holdout.csv'), '--synthetic', join(dir, 'syn.csv'), '--target', 'nope', '--out', join(dir, 'r4')]),
    ).rejects.toThrow(/target "nope" is not a column/);
  });
});
