// Checks that the GMM transformer loses nothing measurable: encode then decode a bench split's
// train rows and judge the decoded rows with the evaluation suite (shapes and pairs should be ~1).
//   node bin/run-ts.mjs bench/transformer-roundtrip.ts [split dir, default .tmp/bench-quality/credit-default]
// The split dir is one written by bench:quality (train.csv, holdout.csv, schema.json).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeCsv } from '../shared/data/csv';
import { formatRow, loadTable, validateSchema } from '../shared/data/schema';
import { evaluateFiles } from '../shared/eval/run';
import { GmmTransformer, summaryColumns, summaryCounts } from '../shared/transformer/gmm';

const dir = process.argv[2] ?? '.tmp/bench-quality/credit-default';
const schema = validateSchema(JSON.parse(readFileSync(join(dir, 'schema.json'), 'utf8')));
const rows = (await loadTable(join(dir, 'train.csv'), schema)).rows;
const counts = summaryCounts(schema, rows);
const t = GmmTransformer.fit(schema, summaryColumns(schema).map((s, k) => ({ column: s.column, values: counts[k]! })));
const back = t.inverse(t.transform(rows), rows.length);
const out = join(dir, 'roundtrip.csv');
writeCsv(out, schema.columns.map((c) => c.name), back.map((r) => formatRow(schema, r)));
const { report } = await evaluateFiles({ real: join(dir, 'train.csv'), holdout: join(dir, 'holdout.csv'), synthetic: out, schema: join(dir, 'schema.json'), outDir: join(dir, 'roundtrip-report') });
const f = (report as unknown as { fidelity: { columnShapes: number; columnPairs: number } }).fidelity;
process.stdout.write(`${dir}: ${rows.length} rows encoded (${t.outputDim} dims) and decoded: column shapes ${f.columnShapes.toFixed(5)}, column pairs ${f.columnPairs.toFixed(5)}\n`);
