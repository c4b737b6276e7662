// The banks' DP-noised pair counts as the coordinator holds them, and the generator's pair targets
// merged from them (mergePairTargets: post-processing). A bank's tables are checked against the
// planned pairs before they are kept: same layout, and table totals that agree with one another as
// far as their noise allows (every table of one release counts the same rows, so a table inflated on
// its own, by a bug or to pull the targets, shows). The server saves the book whenever a bank's release
// changes and restores it at start, so the first round after a restart has its targets.
import type { PairTable } from '../protocol';
import type { PairRelease } from './persistence';
import { medianTableTotal, mergePairTargets, type SpanPair } from '../shared/transformer/pair-counts';

/** How far (in noise sds of the difference) a table's total may stray from the median total of the bank's tables. */
export const PAIR_TOTAL_TOLERANCE_SDS = 8;

export class PairBook {
  private readonly banks = new Map<string, PairRelease>();
  /** Banks whose restored tables did not fit the planned pairs (another schema or plan): not kept. */
  readonly dropped: string[] = [];

  constructor(readonly pairs: readonly SpanPair[], restored: Record<string, PairRelease> = {}) {
    for (const [bank, r] of Object.entries(restored)) {
      const fits = Number.isFinite(r?.noiseSd) && r.noiseSd > 0 && Array.isArray(r.tables) && r.tables.length === pairs.length &&
        r.tables.every((t, i) => Array.isArray(t) && t.length === pairs[i]!.a.dim * pairs[i]!.b.dim && t.every((v) => Number.isFinite(v)));
      if (fits) this.banks.set(bank, { noiseSd: r.noiseSd, tables: r.tables.map((t) => [...t]), ...(Number.isFinite(r.weight) && r.weight! > 0 ? { weight: r.weight! } : {}) });
      else this.dropped.push(bank);
    }
  }

  /** Why a bank's pair counts cannot be used, or null. */
  problem(pc: { noiseStd: number; tables: readonly PairTable[] }): string | null {
    const pairs = this.pairs;
    if (pc.tables.length !== pairs.length) return `clientUpdate.pairCounts has ${pc.tables.length} tables, the consortium plans ${pairs.length} pairs`;
    for (let i = 0; i < pairs.length; i++) {
      const t = pc.tables[i]!;
      const p = pairs[i]!;
      if (t.aOffset !== p.a.offset || t.aDim !== p.a.dim || t.bOffset !== p.b.offset || t.bDim !== p.b.dim) {
        return `clientUpdate.pairCounts[${i}] is spans ${t.aOffset}+${t.aDim} × ${t.bOffset}+${t.bDim}, the consortium plans '${p.a.column}' (${p.a.offset}+${p.a.dim}) × '${p.b.column}' (${p.b.offset}+${p.b.dim})`;
      }
    }
    const values = pc.tables.map((t) => t.values);
    const { index: mid, total: median, totals } = medianTableTotal(values);
    for (let i = 0; i < values.length; i++) {
      const total = totals[i]!;
      // The difference of two tables' totals has noise sd noiseStd·√(cells_i + cells_mid).
      const sd = pc.noiseStd * Math.sqrt(values[i]!.length + values[mid]!.length);
      if (Math.abs(total - median) > PAIR_TOTAL_TOLERANCE_SDS * sd) {
        return `clientUpdate.pairCounts[${i}] counts ${total.toFixed(0)} rows, the bank's other tables about ${median.toFixed(0)}: more than ${PAIR_TOTAL_TOLERANCE_SDS} noise sds (${sd.toFixed(1)}) apart, so these are not the counts of one table of rows`;
      }
    }
    return null;
  }

  /**
   * Keeps a checked release as the bank's latest, with `weight`, the FedAvg weight (sample count) of
   * the update that brought it: the bank's tables are scaled to it in the merge, so a bank pulls the
   * targets as much as it pulls the model. Says whether it was new, replaced an earlier one, or repeated it.
   */
  keep(bankId: string, pc: { noiseStd: number; tables: readonly PairTable[] }, weight?: number): 'received' | 'replaced' | 'same' {
    const had = this.banks.get(bankId);
    const tables = pc.tables.map((t) => [...t.values]);
    const w = weight !== undefined && Number.isFinite(weight) && weight > 0 ? weight : undefined;
    if (had && had.noiseSd === pc.noiseStd && had.weight === w && had.tables.every((t, i) => t.every((v, j) => v === tables[i]![j]))) return 'same';
    this.banks.set(bankId, { noiseSd: pc.noiseStd, tables, ...(w !== undefined ? { weight: w } : {}) });
    return had ? 'replaced' : 'received';
  }

  get size(): number {
    return this.banks.size;
  }

  /** Every bank's release, for saving. */
  entries(): Record<string, PairRelease> {
    return Object.fromEntries(this.bankIds().map((b) => [b, this.banks.get(b)!]));
  }

  /** The banks whose tables are held, sorted. */
  bankIds(): string[] {
    return [...this.banks.keys()].sort();
  }

  /** The targets merged from every bank's latest tables, each scaled to its FedAvg weight, or undefined before any arrived. */
  targets(): PairTable[] | undefined {
    if (this.banks.size === 0) return undefined;
    const merged = mergePairTargets(this.pairs, this.bankIds().map((b) => this.banks.get(b)!));
    return merged.map((t) => ({ aOffset: t.aOffset, aDim: t.aDim, bOffset: t.bOffset, bDim: t.bDim, values: t.joint }));
  }
}
