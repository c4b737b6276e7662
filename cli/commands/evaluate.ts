// `fedsynth evaluate`: fidelity, utility and privacy report of a synthetic CSV against the real
// training CSV and a real holdout. Logic lives in shared/eval; this only wires options and progress.
import type { Command } from 'commander';
import { evaluateFiles } from '../../shared/eval/run';
import { createProgress } from '../../shared/log/progress';

export function register(program: Command): void {
  program
    .command('evaluate')
    .description('Fidelity, utility (TSTR/TRTR) and privacy (DCR, NNDR, MIA) report of synthetic data; writes report.json and report.html')
    .requiredOption('--real <csv>', 'real training CSV the synthetic data was made from')
    .requiredOption('--holdout <csv>', 'real holdout CSV never seen by the generator')
    .requiredOption('--synthetic <csv>', 'synthetic CSV to evaluate')
    .requiredOption('--out <dir>', 'output folder for report.json and report.html')
    .option('--target <column>', 'target column for utility (TSTR/TRTR, augmentation)')
    .option('--positive-class <value>', "the target's class scored one-vs-rest (default: its least frequent value in --real)")
    .option('--schema <json>', 'consortium schema JSON (column types and roles); inferred from --real when absent')
    .option('--separator <char>', 'CSV separator (default: auto-detect , or ;)')
    .option('--seed <n>', 'seed of every sample drawn', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--seed must be a non-negative integer, got "${v}"`);
      return n;
    })
    .option('--privacy-sample <n>', 'rows sampled per query set for DCR/NNDR/MIA (default: 5000, fewer for very large inputs; see shared/eval/README.md)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 10) throw new Error(`--privacy-sample must be an integer >= 10, got "${v}"`);
      return n;
    })
    .action(async (o: { real: string; holdout: string; synthetic: string; out: string; target?: string; positiveClass?: string; schema?: string; separator?: string; seed?: number; privacySample?: number }) => {
      // A bar on a TTY, plain lines otherwise (stderr, so stdout ends with the report path).
      const bar = createProgress('evaluate', 100);
      const t0 = Date.now();
      const update = (step: string, done: number): void => bar.update(Math.round(done * 100), `${((Date.now() - t0) / 1000).toFixed(1)}s ${step}`);
      try {
        const { jsonPath, report } = await evaluateFiles({
          real: o.real,
          holdout: o.holdout,
          synthetic: o.synthetic,
          outDir: o.out,
          target: o.target,
          ...(o.positiveClass !== undefined ? { utility: { positiveClass: o.positiveClass } } : {}),
          schema: o.schema,
          separator: o.separator,
          seed: o.seed,
          privacyQuerySample: o.privacySample,
          onProgress: update,
        });
        bar.done(`${((Date.now() - t0) / 1000).toFixed(1)}s`);
        for (const w of report.warnings) process.stderr.write(`evaluate: warning: ${w}\n`);
        const f = report.fidelity;
        const pr = report.privacy;
        process.stdout.write(
          `fidelity: column shapes ${f.columnShapes.toFixed(3)}, column pairs ${f.columnPairs.toFixed(3)}, detection AUC ${f.detectionAuc.toFixed(3)}\n` +
            (report.utility
              ? `utility (class "${report.utility.positiveClass}" vs rest, ${report.utility.holdoutPositives} of ${report.utility.holdoutRows} holdout rows): GBDT AUC TSTR ${report.utility.gbdt.tstr.auc.toFixed(3)} / TRTR ${report.utility.gbdt.trtr.auc.toFixed(3)}; logistic TSTR ${report.utility.logistic.tstr.auc.toFixed(3)} / TRTR ${report.utility.logistic.trtr.auc.toFixed(3)}\n`
              : '') +
            `privacy: exact copies ${(pr.exactCopyRate * 100).toFixed(2)}%, closer-to-train ${pr.dcr.shareCloserToTrain.toFixed(3)}, MIA AUC distance ${pr.mia.distanceAuc.toFixed(3)} / density ${pr.mia.densityAuc.toFixed(3)}\n` +
            `${jsonPath}\n`,
        );
      } catch (e) {
        process.stderr.write('\n');
        throw e;
      }
    });
}
