// The coordinator's round state machine, independent of socket.io: the server layer feeds it
// decoded messages and connection events, and it answers through a `send` port. This keeps every
// round rule (who participates, deadlines, drops, retries, commit) in one testable place.

import type { Logger } from '../shared/log/logger';
import type { ClientFailure, ClientResult, Strategy, Tensors } from './strategy/types';

export interface TrainingPlan {
  localSteps: number;
  batchSize: number;
  lrGenerator: number;
  lrDiscriminator: number;
  dSteps: number;
  /** Generator updates per local step (1: one, as CTGAN). */
  gSteps?: number;
  loss: string;
  updateClipNorm: number;
}

export interface RoundPolicy {
  /** A round starts only when at least this many banks are connected, and commits only with this many updates. */
  minClients: number;
  /** Stop after this many committed rounds (0 = run until stopped). */
  maxRounds: number;
  /** How long banks have to send their update. */
  deadlineMs: number;
  /** Once `minClients` banks are connected, wait this long for more before starting a round. */
  waitForClientsMs: number;
  /** Consecutive failed attempts of one round before the coordinator gives up on it (0 = never). */
  retryLimit: number;
}

export interface CommittedRound {
  roundId: number;
  modelVersion: number;
  weights: Tensors;
  participants: { bankId: string; sampleCount: number; metrics: Record<string, number>; epsilonSpent: number }[];
  failures: ClientFailure[];
  /** How the published weights differ from FedAvg: the β with which the generator was averaged into them (0 = not). */
  published?: { generatorEma: number };
}

/** What the state machine needs from the outside world. */
export interface RoundPorts {
  sendRoundStart(bankId: string, msg: { roundId: number; modelVersion: number; weights: Tensors; plan: TrainingPlan; deadlineMs: number; seed: number }): void;
  sendRoundResult(bankId: string, msg: { roundId: number; modelVersion: number; banksAggregated: number; status: 'committed' | 'failed'; message: string }): void;
  /** Durably store the new global model; resolves once it is safe to announce. */
  commit(round: CommittedRound): Promise<void>;
  /** Record a failed or abandoned attempt (for status/monitoring). */
  recordFailure(roundId: number, reason: string, failures: ClientFailure[]): void;
  onRoundStarted?(roundId: number, participants: string[]): void;
  onFinished?(): void;
  /**
   * Secure aggregation: the unmasked weighted sum Σ w_k·u_k of the results' (masked) updates and
   * Σ w_k, or null when this round aggregates plain updates. A rejection fails the round (retried).
   */
  secureSum?(roundId: number, results: ClientResult[]): Promise<{ weightedSum: Tensors; totalWeight: number } | null>;
}

export type UpdateRejection =
  | { code: 'STALE_ROUND'; message: string }
  | { code: 'NOT_PARTICIPANT'; message: string }
  | { code: 'DUPLICATE_UPDATE'; message: string }
  | { code: 'INVALID_FIELD'; message: string };

interface OpenRound {
  id: number;
  attempt: number;
  participants: Set<string>;
  results: Map<string, ClientResult & { epsilonSpent: number }>;
  failures: Map<string, string>;
  timer: NodeJS.Timeout;
  startedAt: number;
}

export interface RoundSnapshot {
  state: 'waiting' | 'training' | 'aggregating' | 'finished';
  roundId: number;
  modelVersion: number;
  roundsCommitted: number;
  participants: string[];
  reported: string[];
  failures: ClientFailure[];
}

export class RoundManager {
  private connected = new Set<string>();
  private round: OpenRound | null = null;
  private aggregating = false;
  private finished = false;
  private startTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private committedThisRun = 0;

  constructor(
    private readonly strategy: Strategy,
    private readonly policy: RoundPolicy,
    private readonly plan: TrainingPlan,
    private readonly ports: RoundPorts,
    private readonly log: Logger,
    private global: { weights: Tensors; modelVersion: number; nextRoundId: number; roundsCommitted: number },
  ) {}

  get modelVersion(): number {
    return this.global.modelVersion;
  }

  get currentRoundId(): number {
    return this.round?.id ?? this.global.nextRoundId;
  }

  snapshot(): RoundSnapshot {
    const r = this.round;
    return {
      state: this.finished ? 'finished' : this.aggregating ? 'aggregating' : r ? 'training' : 'waiting',
      roundId: this.currentRoundId,
      modelVersion: this.global.modelVersion,
      roundsCommitted: this.global.roundsCommitted,
      participants: r ? [...r.participants] : [],
      reported: r ? [...r.results.keys()] : [],
      failures: r ? [...r.failures].map(([bankId, reason]) => ({ bankId, reason })) : [],
    };
  }

  isFinished(): boolean {
    return this.finished;
  }

  bankConnected(bankId: string): void {
    this.connected.add(bankId);
    this.scheduleStart();
  }

  /** A bank went away: it is dropped from the open round, which completes with the rest if it can. */
  bankDisconnected(bankId: string, reason = 'disconnected'): void {
    this.connected.delete(bankId);
    const r = this.round;
    if (!r || this.aggregating || !r.participants.has(bankId) || r.results.has(bankId)) return;
    r.failures.set(bankId, reason);
    this.log.warn('bank_dropped', { round: r.id, bank: bankId, reason });
    this.checkRoundProgress();
  }

  /** A bank that missed a secure-aggregation step leaves the open round (it stays connected for later rounds). */
  dropFromRound(bankId: string, reason: string): void {
    const r = this.round;
    if (!r || this.aggregating || !r.participants.has(bankId) || r.results.has(bankId) || r.failures.has(bankId)) return;
    r.failures.set(bankId, reason);
    this.log.warn('bank_dropped', { round: r.id, bank: bankId, reason });
    this.checkRoundProgress();
  }

  /** Fails the open round `roundId` now (e.g. secure aggregation fell below its threshold); it is retried like any failed round. */
  abortRound(roundId: number, reason: string): void {
    const r = this.round;
    if (!r || r.id !== roundId || this.aggregating) return;
    void this.failRound(reason);
  }

  /** Validates that an update belongs to the open round; the caller has already decoded and shape-checked it. */
  acceptUpdate(bankId: string, roundId: number, modelVersion: number, result: ClientResult, epsilonSpent: number): UpdateRejection | null {
    const rej = this.checkUpdate(bankId, roundId, modelVersion, result.sampleCount);
    if (rej) return rej;
    const r = this.round!;
    r.results.set(bankId, { ...result, epsilonSpent });
    this.log.info('update_received', { round: r.id, bank: bankId, samples: result.sampleCount, reported: r.results.size, of: r.participants.size });
    this.checkRoundProgress();
    return null;
  }

  /** What acceptUpdate would answer, without recording anything. */
  checkUpdate(bankId: string, roundId: number, modelVersion: number, sampleCount: number): UpdateRejection | null {
    const r = this.round;
    if (!r || this.aggregating || roundId !== r.id) {
      return { code: 'STALE_ROUND', message: `round ${roundId} is not open (open round: ${r && !this.aggregating ? r.id : 'none'})` };
    }
    if (modelVersion !== this.global.modelVersion) {
      return { code: 'STALE_ROUND', message: `update is against model version ${modelVersion}, round ${r.id} trains version ${this.global.modelVersion}` };
    }
    if (!r.participants.has(bankId) || r.failures.has(bankId)) {
      return { code: 'NOT_PARTICIPANT', message: `bank '${bankId}' is not a participant of round ${r.id}` };
    }
    if (r.results.has(bankId)) {
      return { code: 'DUPLICATE_UPDATE', message: `bank '${bankId}' already sent its update for round ${r.id}` };
    }
    if (!Number.isSafeInteger(sampleCount) || sampleCount <= 0) {
      return { code: 'INVALID_FIELD', message: `sample count must be a positive integer, got ${sampleCount}` };
    }
    return null;
  }

  stop(): void {
    this.finished = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    if (this.round) clearTimeout(this.round.timer);
    this.startTimer = null;
  }

  private scheduleStart(): void {
    if (this.finished || this.round || this.aggregating || this.startTimer) return;
    if (this.connected.size < this.policy.minClients) return;
    // Give late joiners a moment so a round does not start with just the first minClients banks.
    this.startTimer = setTimeout(() => {
      this.startTimer = null;
      this.startRound();
    }, this.policy.waitForClientsMs);
  }

  private startRound(): void {
    if (this.finished || this.round || this.aggregating) return;
    const available = [...this.connected];
    if (available.length < this.policy.minClients) {
      this.log.info('waiting_for_banks', { connected: available.length, needed: this.policy.minClients });
      return;
    }
    const participants = this.strategy.selectParticipants({ roundId: this.global.nextRoundId, available });
    if (participants.length < this.policy.minClients) {
      this.log.warn('too_few_participants_selected', { selected: participants.length, needed: this.policy.minClients });
      return;
    }
    const id = this.global.nextRoundId;
    this.attempt += 1;
    const deadlineMs = Date.now() + this.policy.deadlineMs;
    const timer = setTimeout(() => this.onDeadline(id), this.policy.deadlineMs);
    this.round = { id, attempt: this.attempt, participants: new Set(participants), results: new Map(), failures: new Map(), timer, startedAt: Date.now() };
    this.log.info('round_started', { round: id, attempt: this.attempt, modelVersion: this.global.modelVersion, participants });
    this.ports.onRoundStarted?.(id, participants);
    // A fresh seed per round and bank attempt keeps local randomness independent across rounds.
    const seed = (id * 7919 + this.attempt * 104729) >>> 0;
    for (const bankId of participants) {
      this.ports.sendRoundStart(bankId, { roundId: id, modelVersion: this.global.modelVersion, weights: this.global.weights, plan: this.plan, deadlineMs, seed });
    }
  }

  private onDeadline(roundId: number): void {
    const r = this.round;
    if (!r || r.id !== roundId || this.aggregating) return;
    for (const bankId of r.participants) {
      if (!r.results.has(bankId) && !r.failures.has(bankId)) {
        r.failures.set(bankId, 'straggler: missed the deadline');
        this.log.warn('bank_straggled', { round: r.id, bank: bankId });
      }
    }
    this.checkRoundProgress(true);
  }

  private checkRoundProgress(deadlinePassed = false): void {
    const r = this.round;
    if (!r || this.aggregating) return;
    const pending = [...r.participants].filter((b) => !r.results.has(b) && !r.failures.has(b));
    if (pending.length > 0 && !deadlinePassed) {
      // Still waiting; but if even all pending banks cannot reach minClients, fail now rather than at the deadline.
      if (r.results.size + pending.length < this.policy.minClients) void this.failRound('too few banks left in the round');
      return;
    }
    if (r.results.size >= this.policy.minClients) void this.aggregate();
    else void this.failRound(`only ${r.results.size} of the required ${this.policy.minClients} updates arrived`);
  }

  private async aggregate(): Promise<void> {
    const r = this.round!;
    clearTimeout(r.timer);
    this.aggregating = true;
    const results = [...r.results.values()];
    const failures = [...r.failures].map(([bankId, reason]) => ({ bankId, reason }));
    try {
      const secure = this.ports.secureSum ? await this.ports.secureSum(r.id, results) : null;
      let weights: Tensors;
      if (secure) {
        if (!this.strategy.aggregateFromSum) throw new Error(`strategy '${this.strategy.name}' cannot aggregate from a sum (secure aggregation)`);
        weights = this.strategy.aggregateFromSum(this.global.weights, secure.weightedSum, secure.totalWeight, failures);
      } else {
        weights = this.strategy.aggregate(this.global.weights, results, failures);
      }
      const modelVersion = this.global.modelVersion + 1;
      await this.ports.commit({
        roundId: r.id,
        modelVersion,
        weights,
        participants: results.map((x) => ({ bankId: x.bankId, sampleCount: x.sampleCount, metrics: x.metrics, epsilonSpent: x.epsilonSpent })),
        failures,
      });
      this.global = { weights, modelVersion, nextRoundId: r.id + 1, roundsCommitted: this.global.roundsCommitted + 1 };
      this.committedThisRun += 1;
      this.attempt = 0;
      const secs = (Date.now() - r.startedAt) / 1000;
      this.log.info('round_committed', { round: r.id, modelVersion, banks: results.length, dropped: failures.length, seconds: Number(secs.toFixed(2)), ...meanMetrics(results) });
      for (const bankId of r.participants) {
        if (this.connected.has(bankId)) {
          this.ports.sendRoundResult(bankId, { roundId: r.id, modelVersion, banksAggregated: results.length, status: 'committed', message: 'ok' });
        }
      }
    } catch (err) {
      this.log.error('aggregation_failed', { round: r.id, error: err instanceof Error ? err.message : String(err) });
      this.aggregating = false;
      this.round = r; // failRound clears it
      await this.failRound(`aggregation failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.round = null;
    this.aggregating = false;
    if (this.policy.maxRounds > 0 && this.global.roundsCommitted >= this.policy.maxRounds) {
      this.finished = true;
      this.log.info('training_finished', { rounds: this.global.roundsCommitted, modelVersion: this.global.modelVersion });
      this.ports.onFinished?.();
      return;
    }
    this.scheduleStart();
  }

  private async failRound(reason: string): Promise<void> {
    const r = this.round;
    if (!r) return;
    clearTimeout(r.timer);
    this.round = null;
    const failures = [...r.failures].map(([bankId, why]) => ({ bankId, reason: why }));
    this.log.warn('round_failed', { round: r.id, attempt: r.attempt, reason });
    this.ports.recordFailure(r.id, reason, failures);
    for (const bankId of r.participants) {
      if (this.connected.has(bankId)) {
        this.ports.sendRoundResult(bankId, { roundId: r.id, modelVersion: this.global.modelVersion, banksAggregated: 0, status: 'failed', message: reason });
      }
    }
    if (this.policy.retryLimit > 0 && r.attempt >= this.policy.retryLimit) {
      this.finished = true;
      this.log.error('round_abandoned', { round: r.id, attempts: r.attempt, reason: 'retry limit reached' });
      this.ports.onFinished?.();
      return;
    }
    // The same round id is retried: nothing was committed, so nothing is counted twice.
    this.scheduleStart();
  }
}

/** Mean of each numeric metric the banks reported (losses), for progress display. */
function meanMetrics(results: { metrics: Record<string, number> }[]): Record<string, number> {
  const sums = new Map<string, { s: number; n: number }>();
  for (const r of results) {
    for (const [k, v] of Object.entries(r.metrics)) {
      if (!Number.isFinite(v)) continue;
      const e = sums.get(k) ?? { s: 0, n: 0 };
      e.s += v;
      e.n += 1;
      sums.set(k, e);
    }
  }
  const out: Record<string, number> = {};
  for (const [k, { s, n }] of sums) out[k] = Number((s / n).toFixed(4));
  return out;
}
