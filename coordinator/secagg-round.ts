// One round of secure aggregation on the coordinator (issue #6): drives shared/secagg's SecAggServer
// from decoded frames, with a timeout per step, and hands the RoundManager the unmasked SUM of the
// banks' weighted updates, never one bank's update. The coordinator only ever holds masked inputs
// (summed as they arrive, not kept) and the final sum.
//
// Steps (Bonawitz et al., CCS 2017; U1 ⊇ U2 ⊇ U3 ⊇ U4, each ≥ t or the round fails and is retried):
//   RoundStart(secagg) → banks advertise keys      [stepTimeoutMs]  → KeyList to U1
//   banks send sealed share bundles                [stepTimeoutMs]  → ForwardedShares to each of U2
//   banks train, send ClientUpdate.maskedTensors   [round deadline, RoundManager] → U3
//   UnmaskRequest to U3, banks answer              [stepTimeoutMs]  → finish: Σ_{U3} inputs
// A bank that misses a step is dropped from the rest of the round (RoundManager.dropFromRound).
// Each advert carries the bank's Ed25519 signature over its keys (shared/secagg/keys.ts); the
// coordinator relays it untouched in every key-list entry and banks verify it against their consortium
// directory, so the coordinator cannot substitute keys. A bank that refuses the list simply misses the
// share step (no bank → coordinator error message exists).
//
// FedAvg weighting, inside the ring. Sample counts are public metadata (sent in clear already). With
// a public cap W (RoundStart.secagg.weightCap) each bank k reports m_k = min(n_k, W) in clear and
// masks x_k = (m_k / W)·u_k, where u_k is its update clipped to ‖u_k‖ ≤ S (the round's update clip
// norm); so ‖x_k‖ ≤ S and the ring bound holds. The coordinator computes
//     mean = W · dequantise(Σ_{U3} q_k) / Σ_{U3} m_k  =  Σ m_k u_k / Σ m_k  (+ quantisation error)
// which is plain FedAvg with sample counts m_k (identical to plain FedAvg while no bank exceeds W).
// Quantisation error bound per coordinate of the mean (stochastic rounding, no DP ring noise):
//     |mean − FedAvg| < |U3| · W / (scale · Σ_{U3} m_k)          (see secAggMeanErrorBound)
import { SecAggError, SecAggServer, defaultThreshold, dequantise, ringParams, unflatten, type RingParams, type SecAggResult } from '../shared/secagg';
import type { Logger } from '../shared/log/logger';
import { planSkellam, type SkellamPlan } from '../shared/secagg/dp-plan';
import type {
  SecAggBankKeys,
  SecAggCiphertext,
  SecAggParams,
  SecAggShare,
  TensorSpec,
  WireRingTensor,
} from '../protocol';
import type { ClientResult, Tensors } from './strategy/types';

/** Smallest round under secure aggregation: with 2 banks each one learns the other's update from the sum. */
export const SECAGG_MIN_BANKS = 3;
/** Default public cap on a bank's FedAvg weight (rows); larger banks count as this many. */
export const DEFAULT_WEIGHT_CAP = 1 << 20;
export const DEFAULT_STEP_TIMEOUT_MS = 30_000;

export interface SecureAggregationSettings {
  /** Time each bank has for the key, share and unmask steps (default 30 s). */
  stepTimeoutMs?: number;
  /** Public cap W on a bank's sample-count weight (default 2^20; 1 = equal weights when distributedDp is on). */
  weightCap?: number;
  /**
   * Distributed DP (client-level, issue #6.3): every bank adds Skellam noise in the ring before
   * masking so that the noise of the t banks the threshold guarantees has std ≥ z·Δ2 (Δ2 = the
   * ring L2 bound of one bank's input after conditional rounding). Off when absent.
   */
  distributedDp?: { noiseMultiplier: number; roundingBeta?: number };
}

/** The ring and noise parameters of one round: plain quantisation, or a Skellam plan (shared/secagg/dp-plan.ts). */
export function planRoundRing(o: { clipNorm: number; cohortSize: number; threshold: number; vectorLength: number; distributedDp?: SecureAggregationSettings['distributedDp'] }): { ring: RingParams; plan?: SkellamPlan } {
  if (!o.distributedDp) return { ring: ringParams({ clipNorm: o.clipNorm, maxBanks: o.cohortSize }) };
  const plan = planSkellam({
    clipNorm: o.clipNorm,
    dimension: o.vectorLength,
    maxBanks: o.cohortSize,
    minBanks: o.threshold,
    noiseMultiplier: o.distributedDp.noiseMultiplier,
    ...(o.distributedDp.roundingBeta !== undefined ? { beta: o.distributedDp.roundingBeta } : {}),
  });
  return { ring: plan.ring, plan };
}

export type SecAggRejection = { code: 'UNEXPECTED_MESSAGE' | 'STALE_ROUND' | 'INVALID_FIELD' | 'SHAPE_MISMATCH'; message: string };

/** Refuses a configuration where secure aggregation would be on with rounds of fewer than 3 banks. */
export function checkSecureAggregationPolicy(o: { secureAggregation: boolean; minClients: number }): void {
  if (o.secureAggregation && o.minClients < SECAGG_MIN_BANKS) {
    throw new Error(
      `secure aggregation needs rounds of at least ${SECAGG_MIN_BANKS} banks, but --min-clients is ${o.minClients}: ` +
        `with ${o.minClients} bank(s) the aggregate reveals each bank's update to the others. ` +
        `Use --min-clients ${SECAGG_MIN_BANKS} or more, or pass --insecure-aggregation to send plaintext updates to the coordinator (explicit opt-out).`,
    );
  }
}

/** Per-coordinate bound on |secure mean − plain FedAvg| (no DP ring noise). */
export function secAggMeanErrorBound(p: { scale: number; weightCap: number }, summed: number, totalWeight: number): number {
  return (summed * p.weightCap) / (p.scale * totalWeight);
}

export interface SecAggRoundOptions {
  roundId: number;
  /** Participants of the round. */
  cohort: readonly string[];
  /** Model layout, in the order the codec returns tensors (the model spec). */
  layout: readonly TensorSpec[];
  /** L2 bound of each bank's update (the round's update clip norm). */
  clipNorm: number;
  settings: SecureAggregationSettings;
  send: {
    keyList(bankId: string, m: { roundId: number; keys: SecAggBankKeys[] }): void;
    forwardedShares(bankId: string, m: { roundId: number; ciphertexts: SecAggCiphertext[] }): void;
    unmaskRequest(bankId: string, m: { roundId: number; survivors: string[]; dropped: string[] }): void;
  };
  /** A bank missed a step: it leaves the round. */
  drop(bankId: string, reason: string): void;
  /** The round cannot complete (below threshold): fail it; it is retried. */
  abort(reason: string): void;
  log: Logger;
}

type Step = 'keys' | 'shares' | 'inputs' | 'unmask' | 'done' | 'closed';

export class SecAggRound {
  readonly roundId: number;
  readonly params: SecAggParams;
  readonly ring: RingParams;
  private readonly server: SecAggServer;
  private step: Step = 'keys';
  private timer: NodeJS.Timeout | null = null;
  private readonly gone = new Set<string>();
  private readonly advertised = new Set<string>();
  private readonly shared = new Set<string>();
  private u1: string[] = [];
  private u2: string[] = [];
  private readonly u3 = new Set<string>();
  private survivors: string[] = [];
  private readonly answered = new Set<string>();
  private unmaskDone: ((err?: Error) => void) | null = null;
  private readonly d: number;

  constructor(private readonly o: SecAggRoundOptions) {
    this.roundId = o.roundId;
    const cohort = [...o.cohort].sort();
    this.d = o.layout.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    const threshold = defaultThreshold(cohort.length);
    const { ring, plan } = planRoundRing({ clipNorm: o.clipNorm, cohortSize: cohort.length, threshold, vectorLength: this.d, distributedDp: o.settings.distributedDp });
    this.ring = ring;
    // With distributed DP the noise is calibrated to a bank whose weight is the full cap (‖x‖ = S), so
    // a cap far above the banks' sizes would drown their (m/W)-scaled updates in noise: default to
    // W = 1, equal weights (DP-FedAvg's uniform mean), unless the operator sets a cap.
    const weightCap = o.settings.weightCap ?? (o.settings.distributedDp ? 1 : DEFAULT_WEIGHT_CAP);
    this.params = {
      threshold,
      scale: this.ring.scale,
      clipNorm: this.ring.clipNorm,
      maxBanks: this.ring.maxBanks,
      cohort,
      weightCap,
      vectorLength: this.d,
      ...(plan ? { skellamMu: plan.mu, roundingBeta: plan.beta } : {}),
    };
    if (plan) {
      o.log.info('secagg_distributed_dp', {
        round: o.roundId,
        mechanism: 'skellam',
        muPerBank: Number(plan.mu.toPrecision(6)),
        guaranteedBanks: threshold,
        noiseMultiplier: Number(plan.noiseMultiplier.toFixed(4)),
        noiseStdOfSum: Number(plan.noiseStd.toPrecision(4)),
        scale: plan.scale,
      });
    }
    this.server = new SecAggServer({ roundId: o.roundId, threshold, vectorLength: this.d, allowed: cohort });
    this.arm();
  }

  get currentStep(): Step {
    return this.step;
  }

  /** For /status: where the round stands, sizes of U1..U4 so far. */
  status(): { roundId: number; step: Step; threshold: number; cohort: string[]; counts: [number, number, number, number] } {
    return { roundId: this.roundId, step: this.step, threshold: this.params.threshold, cohort: [...this.params.cohort], counts: this.server.counts() };
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.step !== 'done') this.step = 'closed';
    this.unmaskDone?.(new Error('secure-aggregation round closed'));
  }

  /** The bank's connection is gone: steps stop waiting for it. */
  bankGone(bankId: string): void {
    if (!this.params.cohort.includes(bankId) || this.gone.has(bankId)) return;
    this.gone.add(bankId);
    this.maybeClose();
  }

  /**
   * The bank refuses this round (secaggAbort, e.g. a key list it could not verify): it leaves the
   * round now rather than at the step timeout. Logged with the bank's code for the operator.
   */
  bankAborted(bankId: string, m: { roundId: number; code: string; message: string }): SecAggRejection | null {
    const bad = this.inRound(bankId, m.roundId, 'abort');
    if (bad) return bad;
    if (this.gone.has(bankId)) return null;
    this.o.log.warn('secagg_bank_aborted', { round: this.roundId, bank: bankId, code: m.code, message: m.message, step: this.step });
    this.gone.add(bankId);
    this.o.drop(bankId, `refused the secure-aggregation round: ${m.code}`);
    this.maybeClose();
    return null;
  }

  /** The bank's advert; its signature (by the bank's identity key) is kept and relayed untouched in the key list. */
  receiveAdvertise(bankId: string, m: { roundId: number; cPk: Uint8Array; sPk: Uint8Array; signature?: Uint8Array }): SecAggRejection | null {
    const bad = this.expect(bankId, m.roundId, 'keys', 'advertised keys');
    if (bad) return bad;
    const rej = this.guard(() =>
      this.server.receiveAdvertise({ type: 'secaggAdvertiseKeys', roundId: m.roundId, id: bankId, cPk: m.cPk, sPk: m.sPk, ...(m.signature ? { signature: m.signature } : {}) }),
    );
    if (rej) return rej;
    this.advertised.add(bankId);
    this.maybeClose();
    return null;
  }

  receiveShares(bankId: string, m: { roundId: number; ciphertexts: SecAggCiphertext[] }): SecAggRejection | null {
    const bad = this.expect(bankId, m.roundId, 'shares', 'shared keys');
    if (bad) return bad;
    const rej = this.guard(() => this.server.receiveShares({ type: 'secaggShareKeys', roundId: m.roundId, from: bankId, ciphertexts: m.ciphertexts.map((c) => ({ to: c.bankId, data: c.data })) }));
    if (rej) return rej;
    this.shared.add(bankId);
    this.maybeClose();
    return null;
  }

  /** Validates a masked update and flattens it (model-spec order); nothing is recorded yet. */
  checkMaskedInput(bankId: string, roundId: number, sampleCount: number, masked: WireRingTensor[]): { flat: Uint32Array } | SecAggRejection {
    const bad = this.expect(bankId, roundId, 'inputs', 'masked input');
    if (bad) return bad;
    if (!this.u2.includes(bankId)) return { code: 'UNEXPECTED_MESSAGE', message: `bank '${bankId}' did not share keys in round ${roundId}; its masked input cannot be unmasked` };
    if (this.u3.has(bankId)) return { code: 'INVALID_FIELD', message: `bank '${bankId}' already sent its masked input for round ${roundId}` };
    if (sampleCount > this.params.weightCap) return { code: 'INVALID_FIELD', message: `sample count ${sampleCount} exceeds the round's weight cap ${this.params.weightCap}; report min(n, cap)` };
    if (masked.length !== this.o.layout.length) return { code: 'SHAPE_MISMATCH', message: `masked update has ${masked.length} tensors, the model has ${this.o.layout.length}` };
    const flat = new Uint32Array(this.d);
    let at = 0;
    for (let i = 0; i < masked.length; i++) {
      const t = masked[i]!;
      const s = this.o.layout[i]!;
      if (t.name !== s.name || t.data.length !== s.shape.reduce((a, b) => a * b, 1)) return { code: 'SHAPE_MISMATCH', message: `masked tensor ${i} is '${t.name}'[${t.data.length}], expected '${s.name}'` };
      flat.set(t.data, at);
      at += t.data.length;
    }
    return { flat };
  }

  /** Adds a checked masked input into the running sum (the input itself is not kept). */
  addMaskedInput(bankId: string, flat: Uint32Array): SecAggRejection | null {
    const rej = this.guard(() => this.server.receiveMaskedInput({ type: 'secaggMaskedInput', roundId: this.roundId, from: bankId, masked: flat }));
    if (rej) return rej;
    this.u3.add(bankId);
    return null;
  }

  receiveUnmask(bankId: string, m: { roundId: number; selfMaskShares: SecAggShare[]; secretKeyShares: SecAggShare[] }): SecAggRejection | null {
    const bad = this.expect(bankId, m.roundId, 'unmask', 'unmask response');
    if (bad) return bad;
    const toShares = (l: SecAggShare[]) => l.map((s) => ({ of: s.bankId, y: s.y }));
    const rej = this.guard(() =>
      this.server.receiveUnmask({ type: 'secaggUnmaskResponse', roundId: m.roundId, from: bankId, selfMaskShares: toShares(m.selfMaskShares), secretKeyShares: toShares(m.secretKeyShares) }),
    );
    if (rej) return rej;
    this.answered.add(bankId);
    this.maybeClose();
    return null;
  }

  /**
   * Closes U3 (must be exactly the banks whose results the RoundManager holds), runs the unmask
   * step and returns Σ m_k·u_k (float) and Σ m_k. Rejects below threshold or on any inconsistency.
   */
  async secureSum(results: ClientResult[]): Promise<{ weightedSum: Tensors; totalWeight: number }> {
    if (this.step !== 'inputs') throw new Error(`secure aggregation of round ${this.roundId} is at step '${this.step}', not collecting inputs`);
    const ids = results.map((r) => r.bankId).sort();
    const u3 = [...this.u3].sort();
    if (ids.length !== u3.length || ids.some((id, i) => id !== u3[i])) throw new Error(`round ${this.roundId}: results [${ids.join(', ')}] differ from the masked inputs received [${u3.join(', ')}]`);
    const request = this.server.unmaskRequest(); // BELOW_THRESHOLD → the round fails
    this.survivors = request.survivors;
    this.step = 'unmask';
    this.o.log.info('secagg_unmask_request', { round: this.roundId, survivors: request.survivors, dropped: request.dropped });
    await new Promise<void>((resolve, reject) => {
      this.unmaskDone = (err) => {
        this.unmaskDone = null;
        if (err) reject(err);
        else resolve();
      };
      this.arm();
      for (const id of request.survivors) this.o.send.unmaskRequest(id, { roundId: this.roundId, survivors: request.survivors, dropped: request.dropped });
      this.maybeClose();
    });
    const result: SecAggResult = this.server.finish();
    this.step = 'done';
    if (this.timer) clearTimeout(this.timer);
    const W = this.params.weightCap;
    const sum = dequantise(result.sum, this.ring.scale);
    for (let i = 0; i < sum.length; i++) sum[i] *= W;
    const totalWeight = results.reduce((s, r) => s + r.sampleCount, 0);
    this.o.log.info('secagg_unmasked', {
      round: this.roundId,
      counts: result.counts,
      survivors: result.survivors,
      dropped: result.dropped,
      errorBound: Number(secAggMeanErrorBound(this.params, result.survivors.length, totalWeight).toExponential(3)),
    });
    return { weightedSum: unflatten(sum, this.o.layout as { name: string; shape: number[] }[]), totalWeight };
  }

  // ----------------------------------------------------------------------------------- internals

  /** A message about this round from a bank of its cohort (whatever the step). */
  private inRound(bankId: string, roundId: number, what: string): SecAggRejection | null {
    if (roundId !== this.roundId) return { code: 'STALE_ROUND', message: `${what} for round ${roundId}; the secure-aggregation round is ${this.roundId}` };
    if (!this.params.cohort.includes(bankId)) return { code: 'UNEXPECTED_MESSAGE', message: `bank '${bankId}' is not in the cohort of round ${this.roundId}` };
    return null;
  }

  private expect(bankId: string, roundId: number, step: Step, what: string): SecAggRejection | null {
    const bad = this.inRound(bankId, roundId, what);
    if (bad) return bad;
    if (this.step !== step) return { code: 'UNEXPECTED_MESSAGE', message: `${what} from '${bankId}' arrived at step '${this.step}' of round ${this.roundId}` };
    return null;
  }

  private guard(f: () => void): SecAggRejection | null {
    try {
      f();
      return null;
    } catch (err) {
      if (err instanceof SecAggError) return { code: err.code === 'WRONG_STATE' ? 'UNEXPECTED_MESSAGE' : 'INVALID_FIELD', message: `secure aggregation: ${err.message}` };
      throw err;
    }
  }

  private isClosed(): boolean {
    return this.step === 'closed';
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    const step = this.step;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.step === step) this.closeStep(true);
    }, this.o.settings.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS);
  }

  /** Closes the current step early once every bank still expected has answered. */
  private maybeClose(): void {
    const waiting = (expected: readonly string[], got: Set<string>) => expected.some((id) => !got.has(id) && !this.gone.has(id));
    if (this.step === 'keys' && !waiting(this.params.cohort, this.advertised)) this.closeStep(false);
    else if (this.step === 'shares' && !waiting(this.u1, this.shared)) this.closeStep(false);
    else if (this.step === 'unmask' && !waiting(this.survivors, this.answered)) this.closeStep(false);
  }

  private closeStep(timedOut: boolean): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const missed = (expected: readonly string[], got: Set<string>, what: string) => {
      for (const id of expected) {
        if (!got.has(id)) {
          this.o.log.warn('secagg_bank_missed_step', { round: this.roundId, bank: id, step: what, timedOut });
          this.o.drop(id, `secure aggregation: missed the ${what} step`);
        }
      }
    };
    try {
      if (this.step === 'keys') {
        missed(this.params.cohort, this.advertised, 'key advertisement');
        if (this.isClosed()) return; // dropping banks failed the round
        const list = this.server.keyList();
        this.u1 = list.keys.map((k) => k.id);
        this.step = 'shares';
        this.arm();
        const keys = list.keys.map((k) => ({ bankId: k.id, cPk: k.cPk, sPk: k.sPk, ...(k.signature ? { signature: k.signature } : {}) }));
        for (const id of this.u1) this.o.send.keyList(id, { roundId: this.roundId, keys });
        const unsigned = keys.filter((k) => !k.signature).map((k) => k.bankId);
        this.o.log.info('secagg_keys_listed', { round: this.roundId, banks: this.u1, ...(unsigned.length ? { unsigned } : {}) });
        this.maybeClose();
      } else if (this.step === 'shares') {
        missed(this.u1, this.shared, 'share exchange');
        if (this.isClosed()) return;
        const forwarded = this.server.forwardShares();
        this.u2 = [...forwarded.keys()];
        this.step = 'inputs';
        for (const [id, f] of forwarded) this.o.send.forwardedShares(id, { roundId: this.roundId, ciphertexts: f.ciphertexts.map((c) => ({ bankId: c.from, data: c.data })) });
        this.o.log.info('secagg_shares_forwarded', { round: this.roundId, banks: this.u2 });
      } else if (this.step === 'unmask') {
        // Banks of U3 that do not answer keep their input in the sum; they only miss the unmask step.
        for (const id of this.survivors) if (!this.answered.has(id)) this.o.log.warn('secagg_bank_missed_step', { round: this.roundId, bank: id, step: 'unmask', timedOut });
        this.unmaskDone?.();
      }
    } catch (err) {
      const reason = `secure aggregation failed at step '${this.step}': ${err instanceof Error ? err.message : String(err)}`;
      this.o.log.warn('secagg_round_failed', { round: this.roundId, reason });
      const step = this.step;
      this.step = 'closed';
      if (step === 'unmask') this.unmaskDone?.(err instanceof Error ? err : new Error(reason));
      else this.o.abort(reason);
    }
  }
}
