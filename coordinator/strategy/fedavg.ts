import { applyDelta, meanFromSum, trimmedMean, weightedMean } from './aggregate';
import type { ClientFailure, ClientResult, RoundContext, Strategy, Tensors } from './types';

export interface FedAvgOptions {
  /** At most this many banks per round (all available banks when undefined). */
  maxParticipants?: number;
  /** Server learning rate applied to the averaged update (1 = plain FedAvg). */
  serverLr?: number;
}

/** Sample-count-weighted FedAvg (McMahan et al. 2017). */
export class FedAvg implements Strategy {
  readonly name: string = 'fedavg';
  constructor(protected readonly opts: FedAvgOptions = {}) {}

  selectParticipants(ctx: RoundContext): string[] {
    const sorted = [...ctx.available].sort();
    return this.opts.maxParticipants ? sorted.slice(0, this.opts.maxParticipants) : sorted;
  }

  aggregate(global: Tensors, results: ClientResult[], _failures: ClientFailure[]): Tensors {
    const delta = weightedMean(results.map((r) => ({ tensors: r.update, weight: r.sampleCount })));
    return applyDelta(global, delta, this.opts.serverLr ?? 1);
  }

  /** Secure aggregation: the same FedAvg step from Σ n_k·u_k and Σ n_k. */
  aggregateFromSum?: (global: Tensors, weightedSum: Tensors, totalWeight: number, failures: ClientFailure[]) => Tensors = (global, weightedSum, totalWeight) =>
    applyDelta(global, meanFromSum(weightedSum, totalWeight), this.opts.serverLr ?? 1);
}

/** FedAvg with a coordinate-wise trimmed mean instead of the weighted mean. */
export class TrimmedMeanFedAvg extends FedAvg {
  override readonly name = 'trimmed-mean';
  constructor(private readonly trim: number, opts: FedAvgOptions = {}) {
    super(opts);
  }

  override aggregate(global: Tensors, results: ClientResult[], _failures: ClientFailure[]): Tensors {
    const delta = trimmedMean(results.map((r) => r.update), this.trim);
    return applyDelta(global, delta, this.opts.serverLr ?? 1);
  }

  // A trimmed mean needs every update in the clear: no secure-aggregation path.
  override aggregateFromSum = undefined;
}

export function createStrategy(name: string, opts: FedAvgOptions & { trim?: number } = {}): Strategy {
  switch (name) {
    case 'fedavg':
      return new FedAvg(opts);
    case 'trimmed-mean':
      return new TrimmedMeanFedAvg(opts.trim ?? 1, opts);
    default:
      throw new Error(`unknown strategy '${name}' (known: fedavg, trimmed-mean)`);
  }
}
