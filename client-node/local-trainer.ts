// Binds the shared GAN (shared/model) to the agent's LocalTrainer port. Training runs in small
// chunks with a yield to the event loop in between, so socket.io heartbeats keep flowing during
// long local rounds.
import { createModel, createTrainer, parseModelConfig, type GanModel, type OutputSpan } from '../shared/model';
import type { LocalTrainer, PreparedData, Tensors } from './trainer';
import type { ColumnCounts } from '../protocol';
import { frequenciesInSpanOrder } from '../shared/sampling/category-weights';
import type { TrainingPlan } from './wire';

const STEPS_PER_CHUNK = 2;

/** What the coordinator's Welcome tells a bank about the model: architecture and the transformer's output layout. */
export interface ConsortiumModelConfig {
  model: unknown;
  spans: OutputSpan[];
}

export function parseConsortiumModelConfig(json: string): ConsortiumModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`model configuration is not JSON: ${(err as Error).message}`);
  }
  const o = raw as Partial<ConsortiumModelConfig>;
  if (!o || typeof o !== 'object' || !Array.isArray(o.spans)) throw new Error('model configuration lacks the transformer output spans');
  return { model: parseModelConfig(o.model), spans: o.spans };
}

export class GanLocalTrainer implements LocalTrainer {
  private readonly model: GanModel;

  constructor(private readonly cfg: ConsortiumModelConfig, expectedDim: number) {
    this.model = createModel(parseModelConfig(cfg.model), cfg.spans);
    if (this.model.outputDim !== expectedDim) {
      this.model.dispose();
      throw new Error(`the consortium model expects ${this.model.outputDim} encoded columns, this bank's transformer produces ${expectedDim}`);
    }
  }

  setWeights(weights: Tensors): void {
    this.model.setWeights(weights);
  }

  getWeights(): Tensors {
    return this.model.getWeights();
  }

  conditionalSpans(): { column: string; offset: number; dim: number }[] {
    return this.model.condSpans.map((s) => ({ column: s.column, offset: s.offset, dim: s.dim }));
  }

  async train(data: PreparedData, plan: TrainingPlan, categoryWeights: ColumnCounts[] | undefined, shouldStop: () => boolean): Promise<Record<string, number>> {
    const trainer = createTrainer(this.model, {
      lrG: plan.lrGenerator,
      lrD: plan.lrDiscriminator,
      seed: plan.seed,
      categoryFrequencies: categoryWeights ? frequenciesInSpanOrder(this.model, categoryWeights) : undefined,
    });
    const batchSize = Math.min(plan.batchSize, roundDownToMultiple(data.rows, this.model.config.pac));
    let done = 0;
    let last = { dLoss: NaN, gLoss: NaN, condLoss: NaN };
    const sums = { dLoss: 0, gLoss: 0, condLoss: 0 };
    while (done < plan.localSteps && !shouldStop()) {
      const steps = Math.min(STEPS_PER_CHUNK, plan.localSteps - done);
      const losses = trainer.trainSteps(data.encoded, data.rows, { steps, batchSize, dSteps: plan.dSteps });
      for (const l of losses) {
        sums.dLoss += l.dLoss;
        sums.gLoss += l.gLoss;
        sums.condLoss += l.condLoss;
        last = l;
      }
      done += steps;
      await new Promise((r) => setImmediate(r));
    }
    trainer.dispose();
    const n = Math.max(1, done);
    return { steps: done, dLoss: sums.dLoss / n, gLoss: sums.gLoss / n, condLoss: sums.condLoss / n, dLossLast: last.dLoss, gLossLast: last.gLoss };
  }

  epsilonSpent(): number {
    // Without DP-SGD there is no finite guarantee; say so rather than report 0.
    return Number.POSITIVE_INFINITY;
  }

  delta(): number {
    return 0;
  }

  dispose(): void {
    this.model.dispose();
  }
}

function roundDownToMultiple(n: number, m: number): number {
  return Math.max(m, Math.floor(n / m) * m);
}
