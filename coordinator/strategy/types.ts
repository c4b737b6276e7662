// A federation Strategy in the style of Flower: a few small hooks around pure aggregation maths.
// Tensors here are plain `{ name, shape, data }` lists, the same shape the codec produces.


export type Tensors = { name: string; shape: number[]; data: Float32Array }[];

/** One bank's contribution to a round, as the strategy sees it. */
export interface ClientResult {
  bankId: string;
  /** Number of local training rows; public metadata the bank reports (it sizes FedAvg weights). */
  sampleCount: number;
  /** The update: new local weights minus the global weights the round started from. */
  update: Tensors;
  metrics: Record<string, number>;
}

export interface ClientFailure {
  bankId: string;
  reason: string;
}

export interface RoundContext {
  roundId: number;
  /** Banks connected and eligible when the round is configured. */
  available: string[];
}

export interface Strategy {
  readonly name: string;
  /** Choose this round's participants (Flower's configure_fit). */
  selectParticipants(ctx: RoundContext): string[];
  /**
   * Combine the results into the new global weights (Flower's aggregate_fit). Failures are passed in,
   * not hidden, so a strategy may decide a round with too many failures is not worth committing.
   */
  aggregate(global: Tensors, results: ClientResult[], failures: ClientFailure[]): Tensors;
  /**
   * Secure aggregation: combine from the weighted sum Σ w_k·u_k and Σ w_k alone, the only things the
   * coordinator learns (no single update is known). A strategy without it cannot run under secure
   * aggregation (e.g. a trimmed mean needs the individual updates).
   */
  aggregateFromSum?(global: Tensors, weightedSum: Tensors, totalWeight: number, failures: ClientFailure[]): Tensors;
}
