// Reads the bank's CSV against the consortium schema and encodes it with the consortium
// transformer. Row problems are reported locally (line, column, reason) and the bad rows skipped;
// nothing about them is sent anywhere.
import { readFileSync } from 'node:fs';
import type { Logger } from '../shared/log/logger';
import { loadTable, schemaHash, validateSchema, type ConsortiumSchema } from '../shared/data/schema';
import { SimpleTransformer } from '../shared/transformer/simple';
import type { PreparedData } from './trainer';

export interface BankData {
  schema: ConsortiumSchema;
  schemaHash: string;
  prepared: PreparedData;
  rejectedRows: number;
}

export async function loadBankData(csvPath: string, schemaPath: string, opts: { maxProblems: number; log: Logger }): Promise<BankData> {
  const schema = validateSchema(JSON.parse(readFileSync(schemaPath, 'utf8')));
  let shown = 0;
  const table = await loadTable(csvPath, schema, {
    maxProblems: opts.maxProblems,
    onProblem: (p) => {
      if (shown++ < 20) opts.log.warn('row_rejected', { line: p.line, column: p.column, reason: p.reason });
    },
  });
  if (table.rows.length === 0) throw new Error(`${csvPath} has no valid rows to train on`);
  const transformer = SimpleTransformer.fromSchema(schema);
  const encoded = transformer.transform(table.rows);
  return {
    schema,
    schemaHash: schemaHash(schema),
    prepared: { encoded, rows: table.rows.length, dim: transformer.outputDim },
    rejectedRows: table.rejectedRows,
  };
}
