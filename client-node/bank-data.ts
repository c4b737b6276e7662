// Reads the bank's CSV against the consortium schema. Row problems are reported locally (line,
// column, reason) and the bad rows skipped; nothing about them is sent anywhere. The rows stay in
// this process: they are encoded by whichever consortium transformer the coordinator announces
// (a schema-only one at once, a fitted one when the first round starts).
import { readFileSync } from 'node:fs';
import type { Logger } from '../shared/log/logger';
import { loadTable, schemaHash, validateSchema, type ConsortiumSchema, type Row } from '../shared/data/schema';
import type { DataTransformer } from '../shared/transformer/types';
import type { PreparedData } from './trainer';

export interface BankData {
  schema: ConsortiumSchema;
  schemaHash: string;
  rows: Row[];
  rejectedRows: number;
}

export async function loadBankData(csvPath: string, schemaPath: string, opts: { maxProblems: number; log: Logger }): Promise<BankData> {
  let schemaJson: unknown;
  try {
    schemaJson = JSON.parse(readFileSync(schemaPath, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the consortium schema ${schemaPath}: ${(err as Error).message}`);
  }
  const schema = validateSchema(schemaJson);
  let shown = 0;
  const table = await loadTable(csvPath, schema, {
    maxProblems: opts.maxProblems,
    onProblem: (p) => {
      if (shown++ < 20) opts.log.warn('row_rejected', { line: p.line, column: p.column, reason: p.reason });
    },
  });
  if (table.rows.length === 0) throw new Error(`${csvPath} has no valid rows to train on`);
  return { schema, schemaHash: schemaHash(schema), rows: table.rows, rejectedRows: table.rejectedRows };
}

/**
 * Encodes the bank's rows with a consortium transformer (mode sampling seeded for reproducibility).
 * `publicRows`: the bank's released row count (client-node/dp-row-count.ts).
 */
export function encodeRows(transformer: DataTransformer & { transform(rows: readonly Row[], seed?: number): Float32Array }, rows: readonly Row[], publicRows: number, seed = 1): PreparedData {
  const unused = transformer.unusedCategories?.() ?? [];
  const modes = transformer.modeShares?.() ?? [];
  return {
    encoded: transformer.transform(rows, seed),
    rows: rows.length,
    publicRows,
    dim: transformer.outputDim,
    ...(unused.length > 0 ? { unusedCategories: unused } : {}),
    ...(modes.length > 0 ? { modeShares: modes } : {}),
  };
}
