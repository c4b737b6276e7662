import type { Command } from 'commander';
import { simulateBanks } from '../../shared/data/simulate';
import { positiveInt } from './agent';

export function register(program: Command): void {
  program
    .command('simulate-banks')
    .description('generate the embedded default data: a consortium schema and one CSV of card transactions per bank, from a seed')
    .option('--banks <n>', 'number of banks', '3')
    .option('--rows <n>', 'total rows across all banks (banks get unequal shares: 50%/30%/20% for 3)', '20000')
    .option('--out <dir>', 'output directory', 'data')
    .option('--seed <n>', 'random seed (same seed, same files)', '42')
    .action((o: { banks: string; rows: string; out: string; seed: string }) => {
      const t0 = Date.now();
      const res = simulateBanks({ banks: positiveInt(o.banks, '--banks'), rows: positiveInt(o.rows, '--rows'), out: o.out, seed: positiveInt(o.seed, '--seed') });
      process.stdout.write(`schema: ${res.schemaPath}\n`);
      for (const b of res.banks) {
        process.stdout.write(`${b.bankId}: ${b.path}  ${b.rows} rows, ${b.frauds} fraud (${((100 * b.frauds) / b.rows).toFixed(2)}%)\n`);
      }
      process.stderr.write(`generated in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    });
}
