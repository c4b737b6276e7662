// What the coordinator needs to remember across restarts. The implementation binds the SQLite
// state store and the checkpoint files; the round logic sees only this interface.
import type { CommittedRound } from './rounds';
import type { ClientFailure, Tensors } from './strategy/types';
import type { ColumnCounts } from '../protocol';
import type { SamplableModel } from '../shared/sampling/sampler';
import type { LabelCalibration } from '../shared/model/label-calibration';

/** One bank's pair counts as the coordinator holds them: the noise sd per cell and the tables' values in the planned pairs' order. */
export interface PairRelease {
  noiseSd: number;
  tables: number[][];
  /** The bank's FedAvg weight (sample count) of the update that brought them: its weight in the targets. */
  weight?: number;
}

export interface RestoredState {
  weights: Tensors;
  modelVersion: number;
  nextRoundId: number;
  roundsCommitted: number;
  /** Category weights fixed from the banks' DP summaries, if already fixed. */
  categoryWeights?: ColumnCounts[];
  /** The transformer fitted from those summaries, if the consortium uses a fitted one. */
  transformer?: unknown;
  /** Why the label calibration release will not be asked for, when that was decided with the weights. */
  labelCalibrationSkipped?: string;
}

export interface Persistence {
  /** The last committed model, or null on a fresh start. Never a half-written round. */
  load(): RestoredState | null;
  /** Store version 0 (the initial weights) so that every model version has a checkpoint. */
  saveInitial(weights: Tensors): void;
  /** Checkpoint file durably on disk first, then the round and model version in one transaction. */
  commit(round: CommittedRound): Promise<void>;
  recordFailure(roundId: number, reason: string, failures: ClientFailure[]): void;
  bankSeen(bankId: string, signPublicKey: Uint8Array, boxPublicKey: Uint8Array): void;
  recordSpend(bankId: string, roundId: number, epsilon: number, delta: number): void;
  /** A bank's DP summary release (its ε is part of what the bank reports as spent). */
  recordSummarySpend(bankId: string, epsilon: number, delta: number): void;
  /** The merged DP summaries, fixed at the first round, and the transformer fitted from them. */
  saveCategoryWeights(weights: ColumnCounts[], transformer?: unknown, decided?: { labelCalibrationSkipped?: string }): void;
  /** Every bank's latest DP-noised pair counts (coordinator/pair-book.ts), replaced whole when one changes. */
  savePairCounts(byBank: Record<string, PairRelease>): void;
  /** The pair counts saved before a restart (empty when none). */
  pairCounts(): Record<string, PairRelease>;
  /** A bank's label-calibration release after the last round (its ε is part of what it spent). */
  recordCalibrationSpend(bankId: string, roundId: number, epsilon: number, delta: number): void;
  /** The latest committed checkpoint as the sampler reads it (and the round that produced it), or null before any. */
  latestModel(): { version: number; round: number; model: SamplableModel } | null;
  /**
   * Publishes model version `version` again as the next version, with the same weights and
   * meta.labelCalibration set (and `info` in the card): checkpoint file first, then the version
   * row. Returns the new version.
   */
  commitLabelCalibration(version: number, calibration: LabelCalibration, info: Record<string, unknown>): number;
  recordRejection(who: string, code: string, message: string): void;
  status(): Record<string, unknown>;
  close(): void;
}
