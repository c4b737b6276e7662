// Binds the shared GAN (shared/model) to the agent's LocalTrainer port. Training runs in small
// chunks with a yield to the event loop in between, so socket.io heartbeats keep flowing during
// long local rounds.
//
// DP-SGD (shared/model/dp-sgd.ts) runs on the discriminator when the bank asks for it (a noise
// multiplier or a target ε) or the coordinator's plan enables it. Each round is charged to the
// bank's privacy ledger BEFORE any step runs, as one 'dp-sgd' entry (q, σ, steps = local steps ×
// D steps: every D update is one sampled Gaussian mechanism; the G update is post-processing). A
// round that would exceed the budget throws BudgetExceededError and trains nothing. A round cut
// short by its deadline stays charged in full (conservative). The D loss is computed on un-noised
// real rows, so in DP mode it is not returned in the metrics (they are sent to the coordinator).
import { createModel, createTrainer, parseModelConfig, type GanModel, type OutputSpan } from '../shared/model';
import type { ConsortiumTargets, LocalTrainer, PreparedData, Tensors } from './trainer';
import { frequenciesInSpanOrder } from '../shared/sampling/category-weights';
import type { TrainingPlan } from './wire';
import { ImpossibleBudgetError, noiseMultiplierFor } from '../shared/privacy/calibrate';
import type { Budget, PrivacyLedger } from './ledger';
import { DEFAULT_ORDERS, composeRdp, rdpToEpsilon } from '../shared/privacy/rdp';
import { calibrationRdp } from './dp-calibration';
import { countForCalibration } from '../shared/sampling/label-calibration-round';
import type { CalibrationCounts } from '../shared/model/label-calibration';
import { pairCounts, softmaxSpanPairs, type SpanPair } from '../shared/transformer/pair-counts';
import type { PairTable } from '../protocol';

/** The bank's DP-SGD settings and where spend is recorded. */
export interface LocalDpOptions {
  ledger: PrivacyLedger;
  budget: Budget;
  /** σ for every D update. Takes precedence over targetEpsilon. */
  noiseMultiplier?: number;
  /**
   * ε (at budget.delta) that DP-SGD alone should reach after `plannedRounds` rounds: σ is calibrated
   * once with noiseMultiplierFor for plannedRounds × localSteps × dSteps steps at rate q.
   */
  targetEpsilon?: number;
  /**
   * The bank's total ε (at budget.delta) after `plannedRounds` rounds, composed in RDP with what
   * the ledger already holds when training starts (the DP summary, earlier sessions): σ is
   * calibrated once so that ledger ⊕ DP-SGD reaches it (noiseMultiplierFor's priorRdp). The agent's
   * default, with --epsilon-max. targetEpsilon takes precedence. A restarted agent calibrates again
   * against what its ledger holds by then, for plannedRounds more rounds: more noise, never past
   * the budget (the ledger refuses any round that would be).
   */
  totalEpsilon?: number;
  /** Rounds the target ε is spread over (default 1). */
  plannedRounds?: number;
  /**
   * The largest σ calibrated from a target or total ε that the bank will train with (default
   * DEFAULT_MAX_NOISE_MULTIPLIER). Above it the budget left is too small to say anything: the
   * updates would be mostly noise and would pull the consortium's model towards it, so the bank
   * trains no more rounds (as when the budget is spent). An explicit noiseMultiplier is not capped.
   */
  maxNoiseMultiplier?: number;
  /** Per-example clipping norm C (default 1). */
  maxGradNorm?: number;
  /** Poisson rate q per D update (default batchSize / the released row count). */
  sampleRate?: number;
  /**
   * Models with a target classifier C: the share s of C² that bounds C's per-example gradient
   * (C·√s; D's C·√(1−s)), in (0, 1), default DEFAULT_CLASSIFIER_CLIP_SHARE. Same guarantee either
   * way; larger favours the sampled labels, smaller the generated columns (BENCHMARKS.md).
   */
  classifierClipShare?: number;
}

/**
 * 20: over twice the largest σ of BENCHMARKS.md's bench:privacy runs (8.75, ε = 1 on 8,000-row
 * banks), where the model still learned; a bank with a sliver of budget left calibrated σ ≈ 32 in an
 * end-to-end run and sent what was mostly noise.
 */
export const DEFAULT_MAX_NOISE_MULTIPLIER = 20;

interface ActiveDp {
  q: number;
  sigma: number;
  maxGradNorm: number;
}

const STEPS_PER_CHUNK = 2;

/** What the coordinator's Welcome tells a bank about the model: architecture and the transformer's output layout. */
export interface ConsortiumModelConfig {
  model: unknown;
  spans: OutputSpan[];
  /** Which transformer encodes the rows ('simple' when absent). */
  transformer?: 'simple' | 'gmm';
  /** What each bank summarises with DP noise, in order (absent: the conditional columns' counts). */
  summary?: { column: string; dim: number }[];
  /**
   * After the last round the coordinator asks each bank for DP-noised counts that calibrate C's
   * labels (client-node/dp-calibration.ts), at this noise multiplier. Known from the start, so the
   * bank plans the release into its DP-SGD noise. Absent: no calibration.
   */
  labelCalibration?: { noiseMultiplier: number };
  /**
   * Each bank releases the two-way counts of its encoded rows once, at this noise multiplier
   * (client-node/dp-pair-counts.ts), before its first round trains, and sends them with its updates; the coordinator merges them into the
   * generator's pair targets, weighted by `weight` in the generator's loss (TrainerOptions.pairWeight).
   * Known from the start, so the bank charges the release before its DP-SGD noise is calibrated.
   * Absent: no pair counts.
   */
  pairCounts?: { noiseMultiplier: number; weight: number };
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
  if (o.summary !== undefined && (!Array.isArray(o.summary) || !o.summary.every((c) => c && typeof c.column === 'string' && Number.isInteger(c.dim) && c.dim > 0))) {
    throw new Error('model configuration has a malformed summary column list');
  }
  const lc = o.labelCalibration;
  if (lc !== undefined && (!lc || typeof lc !== 'object' || !(typeof lc.noiseMultiplier === 'number' && Number.isFinite(lc.noiseMultiplier) && lc.noiseMultiplier > 0))) {
    throw new Error('model configuration has a malformed labelCalibration (needs a finite noiseMultiplier > 0)');
  }
  const pc = o.pairCounts;
  if (pc !== undefined && (!pc || typeof pc !== 'object' || !(typeof pc.noiseMultiplier === 'number' && Number.isFinite(pc.noiseMultiplier) && pc.noiseMultiplier > 0) || !(typeof pc.weight === 'number' && Number.isFinite(pc.weight) && pc.weight >= 0))) {
    throw new Error('model configuration has a malformed pairCounts (needs a finite noiseMultiplier > 0 and a finite weight ≥ 0)');
  }
  return {
    model: parseModelConfig(o.model),
    spans: o.spans,
    ...(pc ? { pairCounts: { noiseMultiplier: pc.noiseMultiplier, weight: pc.weight } } : {}),
    ...(o.transformer !== undefined ? { transformer: o.transformer } : {}),
    ...(o.summary ? { summary: o.summary } : {}),
    ...(lc ? { labelCalibration: { noiseMultiplier: lc.noiseMultiplier } } : {}),
  };
}

export class GanLocalTrainer implements LocalTrainer {
  private readonly model: GanModel;
  /** σ calibrated from targetEpsilon, per (q, steps per round) so it stays fixed across rounds. */
  private calibrated: { key: string; sigma: number } | undefined;
  private dpUsed = false;
  /** A RoundStart said the consortium will not ask for the calibration release (sticky: once cancelled, it stays so). */
  private calibrationSkipped = false;

  constructor(private readonly cfg: ConsortiumModelConfig, expectedDim: number, private readonly dp?: LocalDpOptions) {
    this.model = createModel(parseModelConfig(cfg.model), cfg.spans);
    if (this.model.outputDim !== expectedDim) {
      this.model.dispose();
      throw new Error(`the consortium model expects ${this.model.outputDim} encoded columns, this bank's transformer produces ${expectedDim}`);
    }
    const s = dp?.classifierClipShare;
    if (s !== undefined && !(Number.isFinite(s) && s > 0 && s < 1)) {
      this.model.dispose();
      throw new Error(`the classifier's clipping share must be a number in (0, 1), got ${s}`);
    }
    if (dp && (dp.noiseMultiplier !== undefined || dp.targetEpsilon !== undefined || dp.totalEpsilon !== undefined) && this.model.config.loss !== 'ns') {
      const loss = this.model.config.loss;
      this.model.dispose();
      throw new Error(
        `this bank requires DP-SGD, which supports the 'ns' loss only, but the consortium model uses '${loss}' ` +
          `(architecture '${parseModelConfig(cfg.model).architecture}'). Ask the operator for a model with loss 'ns', or run the agent without DP-SGD flags.`,
      );
    }
  }

  /** Whether this round trains with DP-SGD: asked by this bank's flags or by the coordinator's plan. */
  private dpWanted(plan: TrainingPlan): boolean {
    const local = this.dp;
    return Boolean((local && (local.noiseMultiplier !== undefined || local.targetEpsilon !== undefined || local.totalEpsilon !== undefined)) || (plan.dp && plan.dp.enabled));
  }

  /** DP-SGD parameters for this round, or undefined when DP-SGD is off. */
  private activeDp(plan: TrainingPlan, publicRows: number, batchSize: number): ActiveDp | undefined {
    if (plan.labelCalibrationSkipped) this.calibrationSkipped = true;
    const local = this.dp;
    const remote = plan.dp && plan.dp.enabled ? plan.dp : undefined;
    if (!this.dpWanted(plan)) return undefined;
    if (!local) throw new Error('the coordinator requires DP-SGD but this agent has no privacy ledger configured');
    const q = local.sampleRate ?? Math.min(1, batchSize / publicRows);
    const maxGradNorm = local.maxGradNorm ?? (remote && remote.maxGradNorm > 0 ? remote.maxGradNorm : 1);
    const stepsPerRound = plan.localSteps * plan.dSteps;
    const localTarget = local.targetEpsilon !== undefined || local.totalEpsilon !== undefined;
    let sigma = local.noiseMultiplier ?? (!localTarget && remote && remote.noiseMultiplier > 0 ? remote.noiseMultiplier : undefined);
    if (sigma === undefined) {
      // A total composes with the ledger's earlier charges; a target ε is DP-SGD's alone.
      const total = local.targetEpsilon === undefined ? local.totalEpsilon : undefined;
      const target = local.targetEpsilon ?? total ?? (remote && remote.targetEpsilon > 0 ? remote.targetEpsilon : undefined);
      if (target === undefined) throw new Error('DP-SGD is enabled but neither a noise multiplier nor a target ε is set (--noise-multiplier or --target-epsilon)');
      const rounds = local.plannedRounds ?? 1;
      const key = `${q}:${stepsPerRound}:${rounds}:${target}:${total !== undefined}:${local.budget.delta}`;
      // Calibrated once (the first round): the ledger's charges at that moment are the prior.
      if (this.calibrated?.key !== key) {
        const planned = this.plannedCalibration();
        // The ledger so far, and the calibration release still to come after the last round.
        const prior = total !== undefined ? (planned ? composeRdp(local.ledger.rdp(), calibrationRdp(planned)) : local.ledger.rdp()) : undefined;
        let s: number;
        try {
          s = noiseMultiplierFor({ targetEpsilon: target, delta: local.budget.delta, sampleRate: q, steps: Math.max(1, rounds * stepsPerRound), ...(prior ? { priorRdp: prior } : {}) });
        } catch (err) {
          if (!(err instanceof ImpossibleBudgetError) || !prior) throw err;
          // Say what is spent and what is only planned: the two figures differ, and both are the bank's.
          const delta = local.budget.delta;
          const spent = local.ledger.spent(delta);
          const withPlan = planned ? rdpToEpsilon(DEFAULT_ORDERS, prior, delta).epsilon : spent;
          throw new ImpossibleBudgetError(
            `privacy budget exhausted: this bank's ledger has spent ε = ${spent.toPrecision(4)} at δ = ${delta.toExponential(2)}` +
              (planned ? `, ε = ${withPlan.toPrecision(4)} with the label calibration release the consortium plans after the last round (noise multiplier ${planned})` : '') +
              `, which leaves nothing for DP-SGD under the bank's total ε = ${target}. This bank trains no more rounds under this budget; a larger budget (--epsilon-max) is the bank's privacy officer's decision`,
          );
        }
        const cap = local.maxNoiseMultiplier ?? DEFAULT_MAX_NOISE_MULTIPLIER;
        if (s > cap) {
          const delta = local.budget.delta;
          throw new ImpossibleBudgetError(
            (total !== undefined
              ? `privacy budget too small to train: what this bank's total ε = ${target} at δ = ${delta.toExponential(2)} leaves after its ledger's ε = ${local.ledger.spent(delta).toPrecision(4)}` + (planned ? ' and the planned label calibration release' : '')
              : `privacy budget too small to train: DP-SGD's ε = ${target} at δ = ${delta.toExponential(2)}`) +
              ` calls for noise σ = ${s.toFixed(1)} over ${Math.max(1, rounds * stepsPerRound)} steps, above --max-noise-multiplier ${cap}: its updates would be mostly noise and would pull the consortium's model towards it. This bank trains no more rounds under this budget; a larger budget (--epsilon-max) is the bank's privacy officer's decision`,
          );
        }
        this.calibrated = { key, sigma: s };
      }
      sigma = this.calibrated.sigma;
    }
    return { q, sigma, maxGradNorm };
  }

  setWeights(weights: Tensors): void {
    this.model.setWeights(weights);
  }

  /**
   * The label calibration's noise multiplier when the consortium plans one and the model has C,
   * and no RoundStart has cancelled it (TrainingConfig.labelCalibrationSkipped).
   */
  plannedCalibration(): number | undefined {
    if (this.calibrationSkipped) return undefined;
    return this.model.labelSpan ? this.cfg.labelCalibration?.noiseMultiplier : undefined;
  }

  calibrationCounts(data: PreparedData, req: { classIndex: number; edges: number[]; classifier: Tensors }): { counts: CalibrationCounts; noiseMultiplier: number } {
    const z = this.plannedCalibration();
    if (z === undefined) {
      throw new Error(
        this.calibrationSkipped
          ? 'the coordinator announced before training that it would not ask for the label calibration release, so this bank planned no ε for it: refusing'
          : 'the consortium model plans no label calibration (or has no classifier): refusing an unplanned release',
      );
    }
    return { counts: countForCalibration(this.model, data.encoded, data.rows, req), noiseMultiplier: z };
  }

  /** The pairs of softmax spans whose counts the consortium plans (the target's left out: C carries it), or none. */
  private plannedPairs(): SpanPair[] {
    if (!this.cfg.pairCounts) return [];
    return softmaxSpanPairs(this.model.spans, this.model.labelSpan ? [this.model.labelSpan.column] : []);
  }

  /**
   * Exact two-way counts of the bank's encoded rows for every planned pair, and the planned noise
   * multiplier; the agent adds the noise and charges the ledger (client-node/dp-pair-counts.ts).
   * Undefined when the consortium plans no pair counts, or the model has fewer than two such spans.
   */
  pairCounts(data: PreparedData): { tables: PairTable[]; noiseMultiplier: number } | undefined {
    const pairs = this.plannedPairs();
    if (pairs.length === 0 || !this.cfg.pairCounts) return undefined;
    const tables = pairCounts(data.encoded, data.rows, data.dim, pairs);
    return {
      tables: pairs.map((p, i) => ({ aOffset: p.a.offset, aDim: p.a.dim, bOffset: p.b.offset, bDim: p.b.dim, values: tables[i]! })),
      noiseMultiplier: this.cfg.pairCounts.noiseMultiplier,
    };
  }

  getWeights(): Tensors {
    return this.model.getWeights();
  }

  conditionalSpans(): { column: string; offset: number; dim: number }[] {
    return this.model.condSpans.map((s) => ({ column: s.column, offset: s.offset, dim: s.dim }));
  }

  async train(data: PreparedData, plan: TrainingPlan, consortium: ConsortiumTargets, shouldStop: () => boolean): Promise<Record<string, number>> {
    const { categoryWeights } = consortium;
    // Under DP-SGD the batch (the generated rows per step, and q) depends on the released count only;
    // without it no guarantee is claimed and the batch fits the exact rows.
    const dpWanted = this.dpWanted(plan);
    const batchSize = Math.min(plan.batchSize, roundDownToMultiple(dpWanted ? data.publicRows : data.rows, this.model.config.pac));
    const dp = this.activeDp(plan, data.publicRows, batchSize);
    // The pair targets act through the generator's marginal term, which needs DP's uniform sampling
    // and the consortium's category weights; a model without it (or a bank without DP) trains without them.
    const pairTargets = dp && categoryWeights && this.model.config.marginalWeight > 0 && consortium.pairTargets?.length ? consortium.pairTargets : undefined;
    const trainer = createTrainer(this.model, {
      lrG: plan.lrGenerator,
      lrD: plan.lrDiscriminator,
      seed: plan.seed,
      categoryFrequencies: categoryWeights ? frequenciesInSpanOrder(this.model, categoryWeights) : undefined,
      ...(data.unusedCategories ? { excludedCategories: data.unusedCategories } : {}),
      ...(data.modeShares ? { modeShares: data.modeShares } : {}),
      ...(pairTargets ? { pairTargets: pairTargets.map((t) => ({ a: t.aOffset, b: t.bOffset, joint: t.values })), pairWeight: this.cfg.pairCounts?.weight ?? 1 } : {}),
      ...(dp ? { sampling: 'uniform' as const, dp: { noiseMultiplier: dp.sigma, maxGradNorm: dp.maxGradNorm, sampleRate: dp.q, publicRows: data.publicRows, ...(this.dp?.classifierClipShare !== undefined ? { classifierClipShare: this.dp.classifierClipShare } : {}) } } : {}),
    });
    if (dp) {
      // Charge BEFORE training, after the trainer accepted the round's inputs (a malformed target
      // costs no budget): throws BudgetExceededError (nothing trained, nothing released).
      try {
        this.dp!.ledger.charge(
          {
            kind: 'dp-sgd',
            params: { q: dp.q, sigma: dp.sigma, steps: plan.localSteps * plan.dSteps },
            note: `discriminator DP-SGD, C = ${dp.maxGradNorm}, pac = ${this.model.config.pac}, ${data.publicRows} rows released`,
          },
          this.dp!.budget,
        );
      } catch (err) {
        trainer.dispose();
        throw err;
      }
      this.dpUsed = true;
    }
    let done = 0;
    let last = { dLoss: NaN, gLoss: NaN, condLoss: NaN };
    const sums = { dLoss: 0, gLoss: 0, condLoss: 0 };
    while (done < plan.localSteps && !shouldStop()) {
      const steps = Math.min(STEPS_PER_CHUNK, plan.localSteps - done);
      const losses = trainer.trainSteps(data.encoded, data.rows, { steps, batchSize, dSteps: plan.dSteps, gSteps: plan.gSteps ?? 1 });
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
    if (dp) {
      // No dLoss: it is a statistic of the un-noised real rows and these metrics leave the bank.
      return {
        steps: done,
        gLoss: sums.gLoss / n,
        condLoss: sums.condLoss / n,
        gLossLast: last.gLoss,
        epsilon: this.epsilonSpent(),
        noiseMultiplier: dp.sigma,
        sampleRate: dp.q,
        maxGradNorm: dp.maxGradNorm,
      };
    }
    return { steps: done, dLoss: sums.dLoss / n, gLoss: sums.gLoss / n, condLoss: sums.condLoss / n, dLossLast: last.dLoss, gLossLast: last.gLoss };
  }

  epsilonSpent(): number {
    // With DP-SGD: everything the ledger has composed (DP-SGD rounds and the count summary).
    if (this.dp && this.dpUsed) return this.dp.ledger.spent(this.dp.budget.delta);
    // Without DP-SGD there is no finite guarantee; say so rather than report 0.
    return Number.POSITIVE_INFINITY;
  }

  delta(): number {
    return this.dp && this.dpUsed ? this.dp.budget.delta : 0;
  }

  dispose(): void {
    this.model.dispose();
  }
}

function roundDownToMultiple(n: number, m: number): number {
  return Math.max(m, Math.floor(n / m) * m);
}
