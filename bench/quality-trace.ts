// bench:quality trace — the fidelity trajectory of one bench:quality training run, evaluated every
// k rounds with the cheap metrics only (column shapes and column pairs of a few thousand sampled
// rows against the real holdout; no GBDT, detection or privacy), plus the round-mean D/G losses.
//   node bin/run-ts.mjs bench/quality-trace.ts [--only credit-default] [--setup federated|central]
//        [--rounds R] [--steps S] [--every K] [--rows N] [--lr LR] [--keep-optimizer]
//        [--lr-d LR] [--ema BETA] [--average all|generator] [--momentum BETA] [--arch mlp|ctgan] [--loss ns|wgan-gp]
//        [--tstr] [--model JSON] [--classifier-weight W] [--work DIR]
// --model: model config overrides merged over the architecture's defaults, e.g. '{"dropout":0.2}'.
// --tstr: also the GBDT's AUC trained on the sampled rows and scored on the holdout (as bench:quality's
// TSTR; slower), and the TRTR AUC once for the ratio.
// --setup central: one bank holds the whole train split (same local steps per round), to tell
// federation-specific drift from drift of the GAN itself. Reuses bench/federated.ts.
import { commandLine } from './common';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { selectBackend } from '../shared/tensor/backend';
import { columnPairs, columnShape, dropColumn, fitAndScore, loadEvaluationInput, positiveClassOf, readSchemaFile } from '../shared/eval';
import { benchmarkSplits, trainFederated, writeSynthetic, type Split } from './federated';

const { args, arg } = commandLine();
const only = arg('--only', 'credit-default').split(',');
const setup = arg('--setup', 'federated');
const rounds = Number(arg('--rounds', '16'));
const steps = Number(arg('--steps', '50'));
const every = Number(arg('--every', '2'));
const rows = Number(arg('--rows', '3000'));
const lr = Number(arg('--lr', '2e-4'));
const lrD = args.includes('--lr-d') ? Number(arg('--lr-d', '')) : undefined;
const ema = Number(arg('--ema', '0'));
const average = arg('--average', 'all') as 'all' | 'generator';
const momentum = Number(arg('--momentum', '0'));
const arch = arg('--arch', 'mlp') as 'mlp' | 'ctgan';
const loss = arg('--loss', 'ns') as 'ns' | 'wgan-gp';
const keepOptimizer = args.includes('--keep-optimizer');
const tstr = args.includes('--tstr');
const classifierWeight = Number(arg('--classifier-weight', '1'));
const modelOverrides = JSON.parse(arg('--model', '{}')) as Record<string, unknown>;
// --work: scratch folder (one per parallel run: the sampled rows are written there).
const work = resolve(arg('--work', '.tmp/bench-quality'));
const traceDir = join(work, 'trace');

async function main(): Promise<void> {
  await selectBackend({ log: (l) => process.stderr.write(`${l}\n`) });
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  mkdirSync(traceDir, { recursive: true });
  const splits = await benchmarkSplits(only, work);
  for (const base of splits) {
    const split: Split = setup === 'central' ? { ...base, bankPaths: [base.trainPath] } : base;
    const schema = await readSchemaFile(split.schemaPath);
    const settings = `${split.name} ${setup} (${split.bankPaths.length} bank${split.bankPaths.length > 1 ? 's' : ''}), ${rounds} rounds x ${steps} steps, lr ${lr}${lrD !== undefined ? ` (D ${lrD})` : ''}, G EMA ${ema}, ${keepOptimizer ? 'keep' : 'reset'} Adam, average ${average}, server momentum ${momentum}, classifier ${classifierWeight}, ${arch}/${loss}${Object.keys(modelOverrides).length ? ` ${JSON.stringify(modelOverrides)}` : ''}`;
    log(`== ${settings}`);
    const lines: string[] = [];
    const worst: string[] = [];
    const associations: string[] = [];
    let trtr: number | undefined;
    await trainFederated(split, {
      model: { ...modelOverrides, architecture: arch, loss },
      rounds,
      localSteps: steps,
      batchSize: 500,
      lr,
      ...(lrD !== undefined ? { lrD } : {}),
      generatorEma: ema,
      classifierWeight,
      keepOptimizer,
      average,
      serverMomentum: momentum,
      seed: 7,
      log,
      onRound: async (r, snap, losses) => {
        if (r % every !== 0 && r !== rounds) return;
        const syn = writeSynthetic(split, snap, { rows, seed: 11, path: join(traceDir, `${split.name}-${setup}.csv`) });
        const input = await loadEvaluationInput({ real: tstr ? split.trainPath : split.holdoutPath, holdout: split.holdoutPath, synthetic: syn }, { schema, target: split.target });
        let utility = '';
        if (tstr) {
          const pc = positiveClassOf(input.real.columns.find((c) => c.name === split.target)!);
          const score = (t: typeof input.real): number => fitAndScore('gbdt', dropColumn(t, split.target), pc.is(t), dropColumn(input.holdout, split.target), pc.is(input.holdout), 42).metrics.auc;
          trtr ??= score(input.real);
          const auc = score(input.synthetic);
          utility = ` ${auc.toFixed(3)} / ${trtr.toFixed(3)} = ${(auc / trtr).toFixed(3)} |`;
        }
        const ref = tstr ? input.holdout : input.real;
        const cols = ref.columns.map((c, k) => ({ name: c.name, kind: c.kind, shape: columnShape(c, input.synthetic.columns[k]!) }));
        const mean = (a: number[]): number => a.reduce((s, x) => s + x, 0) / a.length;
        const shapes = mean(cols.map((c) => c.shape));
        const num = mean(cols.filter((c) => c.kind === 'numeric').map((c) => c.shape));
        const cat = mean(cols.filter((c) => c.kind === 'categorical').map((c) => c.shape));
        const pairScores = columnPairs(ref, input.synthetic);
        const pairs = mean(pairScores.map((p) => p.score));
        // The pairs the real rows associate most, real → synthetic association (Cramér's V or |r|):
        // a generator that matches each column alone scores pairs near 0 here.
        const strongest = [...pairScores].sort((a, b) => Math.abs(b.real) - Math.abs(a.real)).slice(0, 3);
        associations.push(`round ${r}: ${strongest.map((p) => `${p.a}/${p.b} ${Math.abs(p.real).toFixed(2)} → ${Math.abs(p.synthetic).toFixed(2)}`).join(', ')}`);
        const w = (k: 'dLoss' | 'gLoss' | 'condLoss'): string => mean(losses.map((l) => l[k])).toFixed(3);
        const line = `| ${r} | ${shapes.toFixed(3)} | ${num.toFixed(3)} | ${cat.toFixed(3)} | ${pairs.toFixed(3)} | ${w('dLoss')} | ${w('gLoss')} | ${w('condLoss')} |${utility}`;
        lines.push(line);
        worst.push(`round ${r}: ${[...cols].sort((a, b) => a.shape - b.shape).slice(0, 4).map((c) => `${c.name} ${c.shape.toFixed(2)}`).join(', ')}`);
        log(line);
      },
    });
    const out = [
      `### ${settings}; ${rows} sampled rows vs the holdout`,
      '',
      `| round | shapes | numeric | categorical | pairs | D loss | G loss | cond loss |${tstr ? ' GBDT AUC TSTR / TRTR = ratio |' : ''}`,
      `|---|---|---|---|---|---|---|---|${tstr ? '---|' : ''}`,
      ...lines,
      '',
      'Worst columns:',
      ...worst,
      '',
      'Strongest real associations, real → synthetic:',
      ...associations,
      '',
    ].join('\n');
    process.stdout.write(out + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
