// `fedsynth infer-schema`: a draft consortium schema from a CSV, for the operator to review.
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { inferSchemaFromCsv } from '../../shared/data/infer';

export function register(program: Command): void {
  program
    .command('infer-schema')
    .description("draft a consortium schema (types, bounds, categories, log scale) from a CSV; review it before distributing: its bounds and categories describe the file it was run on")
    .requiredOption('--data <csv>', 'CSV to draft the schema from')
    .requiredOption('--out <json>', 'where to write the schema')
    .option('--target <column>', 'the label column (categorical)')
    .option('--id <columns>', 'comma-separated identifier columns (never modelled or sent)')
    .option('--max-code-levels <n>', 'integer columns with at most this many distinct values become categorical', '12')
    .action(async (o: { data: string; out: string; target?: string; id?: string; maxCodeLevels: string }) => {
      const levels = Number(o.maxCodeLevels);
      if (!Number.isInteger(levels) || levels < 0) throw new Error(`--max-code-levels must be a non-negative integer, got '${o.maxCodeLevels}'`);
      const schema = await inferSchemaFromCsv(o.data, { target: o.target, ids: o.id ? o.id.split(',').map((s) => s.trim()) : [], maxCodeLevels: levels });
      writeFileSync(o.out, JSON.stringify(schema, null, 2) + '\n');
      for (const c of schema.columns) {
        const detail = c.role === 'id' ? 'id (not modelled)' : c.type === 'categorical' ? `${c.categories!.length} categories` : `[${c.min}, ${c.max}]${c.scale === 'log' ? ' log scale' : ''}`;
        process.stderr.write(`  ${c.name.padEnd(28)} ${c.type.padEnd(12)} ${detail}${c.nullable ? ', nullable' : ''}\n`);
      }
      process.stdout.write(`${o.out}\n`);
    });
}
