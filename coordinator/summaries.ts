// Merging the banks' DP-noised category counts into the consortium's category weights. The noisy
// counts are already private; summing and clamping them is post-processing (no further cost).
import type { ColumnCounts } from '../protocol';

export class SummaryBook {
  private readonly byBank = new Map<string, ColumnCounts[]>();
  /** Per bank, per summary column: the noise sd on that column's counts. */
  private readonly noiseByBank = new Map<string, number[]>();
  private frozen: ColumnCounts[] | undefined;

  constructor(initial?: ColumnCounts[]) {
    this.frozen = initial && initial.length > 0 ? initial : undefined;
  }

  /** Weights are fixed once the first round starts, so every round and bank trains on the same ones. */
  get weights(): ColumnCounts[] | undefined {
    return this.frozen;
  }

  has(bankId: string): boolean {
    return this.frozen !== undefined || this.byBank.has(bankId);
  }

  /** A bank's summary; `noiseStd` is the sd of any column that does not carry its own. */
  add(bankId: string, counts: ColumnCounts[], noiseStd = 0): void {
    this.byBank.set(bankId, counts.map(({ column, values }) => ({ column, values })));
    this.noiseByBank.set(bankId, counts.map((c) => c.noiseStd ?? noiseStd));
  }

  /** Per column: std of the noise in the merged counts of these banks, √Σ σ_bank² (independent Gaussians). */
  columnNoiseStd(banks: readonly string[]): number[] {
    const per = banks.map((b) => this.noiseByBank.get(b)).filter((v): v is number[] => v !== undefined);
    if (per.length === 0) return [];
    return per[0]!.map((_, k) => Math.sqrt(per.reduce((s, v) => s + (v[k] ?? 0) ** 2, 0)));
  }

  /**
   * Freezes the merge of the given banks' summaries (idempotent once frozen). `finalize`, given the
   * clamped merge and the unclamped sums, may return the weights to freeze instead (post-processing,
   * e.g. pooledCategoryWeights once the transformer is fitted).
   */
  freeze(banks: readonly string[], finalize?: (clamped: ColumnCounts[], rawSums: ColumnCounts[]) => ColumnCounts[]): ColumnCounts[] {
    if (!this.frozen) {
      const summaries = banks.map((b) => this.byBank.get(b)).filter((c): c is ColumnCounts[] => c !== undefined);
      const clamped = mergeNoisyCounts(summaries);
      this.frozen = finalize ? finalize(clamped, mergeNoisyCounts(summaries, { clamp: false })) : clamped;
    }
    return this.frozen;
  }
}

/** Σ over banks per (column, category), clamped at 0 (unless `clamp: false`). Columns must agree in name and length. */
export function mergeNoisyCounts(summaries: readonly ColumnCounts[][], o: { clamp?: boolean } = {}): ColumnCounts[] {
  if (summaries.length === 0) return [];
  const first = summaries[0]!;
  return first.map((col, k) => {
    const sum = new Array<number>(col.values.length).fill(0);
    for (const s of summaries) {
      const c = s[k];
      if (!c || c.column !== col.column || c.values.length !== col.values.length) {
        throw new Error(`summaries disagree on column ${k} ('${col.column}'): the banks use different transformers`);
      }
      c.values.forEach((v, j) => (sum[j]! += v));
    }
    return { column: col.column, values: o.clamp === false ? sum : sum.map((v) => Math.max(0, v)) };
  });
}
