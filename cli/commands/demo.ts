import type { Command } from 'commander';
import { runDemo } from '../demo/run-demo';
import { positiveInt, positiveNumber } from './agent';

export function register(program: Command): void {
  program
    .command('demo')
    .description('run a whole consortium on this machine: 3 simulated banks, a coordinator and 3 agents as separate processes, then sample and compare')
    .option('--out <dir>', 'output directory', 'demo-output')
    .option('--banks <n>', 'number of banks', '3')
    .option('--rows <n>', 'total simulated rows (30,000 per bank on average: enough rare fraud rows for a private model to learn from at ε = 1)', '90000')
    .option('--rounds <n>', 'federated rounds', '12')
    .option('--local-steps <n>', 'local training steps per round', '60')
    .option('--batch-size <n>', 'rows per batch', '500')
    .option('--sample-rows <n>', 'synthetic rows to sample at the end', '10000')
    .option('--architecture <name>', 'mlp or ctgan', 'mlp')
    .option('--seed <n>', 'seed for the data and the model', '42')
    .option('--pair-counts-noise <z>', "the coordinator's --pair-counts-noise: each bank also releases its DP-noised two-way counts, the generator's pair targets (e.g. 20, with --g-steps 2; off by default)")
    .option('--g-steps <n>', "the coordinator's --g-steps: generator updates per local step")
    .option('--timeout <seconds>', 'give up and exit non-zero if training has not finished by then', '900')
    .action(async (o: Record<string, string>) => {
      await runDemo({
        out: o.out!,
        banks: positiveInt(o.banks!, '--banks'),
        rows: positiveInt(o.rows!, '--rows'),
        rounds: positiveInt(o.rounds!, '--rounds'),
        localSteps: positiveInt(o.localSteps!, '--local-steps'),
        batchSize: positiveInt(o.batchSize!, '--batch-size'),
        sampleRows: positiveInt(o.sampleRows!, '--sample-rows'),
        seed: positiveInt(o.seed!, '--seed'),
        architecture: o.architecture!,
        ...(o.pairCountsNoise !== undefined ? { pairCountsNoise: positiveNumber(o.pairCountsNoise, '--pair-counts-noise') } : {}),
        ...(o.gSteps !== undefined ? { gSteps: positiveInt(o.gSteps, '--g-steps') } : {}),
        timeoutSeconds: positiveInt(o.timeout!, '--timeout'),
      });
    });
}
