// The local trainer as the agent sees it. The implementation binds the shared GAN model; the agent
// only moves weights in and out and asks for a round of local training.
import type { ColumnCounts, PairTable } from '../protocol';
import type { TrainingPlan } from './wire';

export type Tensors = { name: string; shape: number[]; data: Float32Array }[];

/** The bank's table, encoded once by the consortium transformer; it stays in this process. */
export interface PreparedData {
  /** Row-major rows x dim matrix from transformer.transform. */
  encoded: Float32Array;
  /** The exact row count: it indexes `encoded` and never leaves the bank. */
  rows: number;
  /**
   * The bank's row count as released (DP-noised and charged, client-node/dp-row-count.ts): the
   * FedAvg weight it reports and DP-SGD's rate q = batch / publicRows come from this, never from `rows`.
   */
  publicRows: number;
  dim: number;
  /** Categories the transformer never encodes (merged into another's slot): no cond vector names them. */
  unusedCategories?: readonly { offset: number; categories: readonly number[] }[];
  /** Numeric columns' mode shares from the fitted transformer (TrainerOptions.modeShares). */
  modeShares?: readonly { offset: number; shares: readonly number[] }[];
}

/** What the coordinator derived from the banks' DP releases (post-processing) and sends with each round. */
export interface ConsortiumTargets {
  /** The merged DP-noised counts per conditional column. */
  categoryWeights?: ColumnCounts[];
  /** The generator's pair targets: the merged, shrunk DP-noised two-way counts (RoundStart.pairTargets). */
  pairTargets?: PairTable[];
}

export interface LocalTrainer {
  setWeights(weights: Tensors): void;
  getWeights(): Tensors;
  /**
   * Runs plan.localSteps steps (seeded by plan.seed); `shouldStop` is polled between steps (deadline,
   * shutdown). `consortium`: what the coordinator derived from the banks' DP releases.
   */
  train(data: PreparedData, plan: TrainingPlan, consortium: ConsortiumTargets, shouldStop: () => boolean): Promise<Record<string, number>>;
  /** The discrete columns the model conditions on (the ones the DP summary counts), with their place in the encoding. */
  conditionalSpans(): { column: string; offset: number; dim: number }[];
  /**
   * Exact per-bin counts of the bank's rows under the published classifier C (label calibration),
   * and the planned noise multiplier; the agent adds the noise and charges the ledger. Throws when
   * the consortium planned no calibration. Absent: this trainer cannot calibrate.
   */
  calibrationCounts?(data: PreparedData, req: { classIndex: number; edges: number[]; classifier: Tensors }): { counts: { rows: number[]; positives: number[] }; noiseMultiplier: number };
  /**
   * Exact two-way counts of the bank's encoded rows for the pairs the consortium plans, and the
   * planned noise multiplier; the agent adds the noise and charges the ledger. Undefined when none
   * are planned. Absent: this trainer releases none.
   */
  pairCounts?(data: PreparedData): { tables: PairTable[]; noiseMultiplier: number } | undefined;
  /** ε spent so far by this bank (0 without DP) and its δ, reported to the coordinator. */
  epsilonSpent(): number;
  delta(): number;
  dispose(): void;
}
