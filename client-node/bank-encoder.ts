// How this bank encodes its rows for the consortium model, and what it summarises for the
// coordinator. The coordinator's model configuration names the transformer kind and the summary
// columns; the layout this bank derives from its own copy of the schema must match the model's
// spans exactly, or encodings would silently disagree across banks.
//   'simple': min-max scaling from the schema alone; the summary is DP category counts.
//   'gmm':    mode-specific normalisation fitted by the coordinator from every bank's DP-noised
//             histograms and counts; the fitted state arrives with each RoundStart.
import type { ConsortiumSchema, Row } from '../shared/data/schema';
import { GmmTransformer, summaryColumns, summaryCounts } from '../shared/transformer/gmm';
import { SimpleTransformer } from '../shared/transformer/simple';
import type { OutputSpan } from '../shared/transformer/types';
import { encodeRows } from './bank-data';
import { countCategories } from './dp-summary';
import type { PreparedData } from './trainer';

export interface SummaryRequest {
  column: string;
  dim: number;
}

export class BankEncoder {
  private kind: 'simple' | 'gmm' = 'simple';
  private spans: OutputSpan[] = [];
  private simple: PreparedData | undefined;
  private fitted: { json: string; data: PreparedData } | undefined;

  /** `publicRows`: the bank's released (DP-noised) row count, carried with every encoding for what depends on the bank's size. */
  constructor(
    private readonly schema: ConsortiumSchema,
    private readonly rows: readonly Row[],
    private readonly publicRows: number,
  ) {}

  /** Adopts the consortium's model configuration; returns the encoded width the model must have. */
  configure(modelConfig: { spans: OutputSpan[]; transformer?: unknown }): number {
    const kind = modelConfig.transformer ?? 'simple';
    if (kind !== 'simple' && kind !== 'gmm') throw new Error(`the coordinator uses transformer '${String(kind)}', which this agent does not know`);
    const layout = kind === 'gmm' ? GmmTransformer.layout(this.schema, maxModesOf(modelConfig.spans)) : SimpleTransformer.fromSchema(this.schema);
    if (JSON.stringify(layout.spans) !== JSON.stringify(modelConfig.spans)) {
      throw new Error("the consortium model's layout differs from the one this bank's schema gives: check that the bank has the operator's current schema file");
    }
    this.kind = kind;
    this.spans = modelConfig.spans;
    this.fitted = undefined;
    return layout.outputDim;
  }

  /** Raw counts for the requested summary (they are noised before release, never sent as they are). */
  rawSummary(requested: readonly SummaryRequest[], condSpans: readonly { column: string; offset: number; dim: number }[]): number[][] {
    if (this.kind === 'gmm') {
      const mine = summaryColumns(this.schema);
      const same = mine.length === requested.length && mine.every((c, i) => c.column === requested[i]!.column && c.dim === requested[i]!.dim);
      if (!same) throw new Error('the coordinator asks for a summary that does not match this bank\'s schema');
      return summaryCounts(this.schema, this.rows);
    }
    const data = this.prepare(undefined);
    return countCategories(data.encoded, data.rows, data.dim, condSpans);
  }

  /** The encoded rows for a round: with the fitted transformer it carries (gmm), else the schema-only one. */
  prepare(transformerJson: string | undefined): PreparedData {
    if (this.kind === 'simple') {
      this.simple ??= encodeRows(SimpleTransformer.fromSchema(this.schema), this.rows, this.publicRows);
      return this.simple;
    }
    if (!transformerJson) throw new Error('the round started without the fitted consortium transformer');
    if (this.fitted?.json === transformerJson) return this.fitted.data;
    const t = GmmTransformer.fromJSON(JSON.parse(transformerJson));
    if (JSON.stringify(t.spans) !== JSON.stringify(this.spans)) throw new Error('the fitted transformer does not match the consortium model layout');
    if (JSON.stringify(t.schema) !== JSON.stringify(this.schema)) throw new Error('the fitted transformer was built for a different schema');
    const data = encodeRows(t, this.rows, this.publicRows);
    this.fitted = { json: transformerJson, data };
    return data;
  }
}

function maxModesOf(spans: readonly OutputSpan[]): number {
  // A numeric column's span pair is tanh(1) then its mode one-hot; the mode block's width is maxModes.
  for (let i = 0; i + 1 < spans.length; i++) if (spans[i]!.kind === 'tanh' && spans[i + 1]!.column === spans[i]!.column) return spans[i + 1]!.dim;
  return 10;
}
