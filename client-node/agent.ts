// The bank's on-premise agent: the only process that reads the bank's CSV. It registers with the
// coordinator, trains locally when a round starts, and sends back a clipped weight update. Raw rows
// and statistics of them never leave this process; only model weight deltas do.

import { io, type Socket } from 'socket.io-client';
import type { Logger } from '../shared/log/logger';
import type { CalibrationRequestMessage, DecodedMessage, Identity, PairTable, RoundStartMessage } from '../protocol';
import { AgentWire } from './wire';
import type { LocalTrainer, PreparedData } from './trainer';
import { prepareUpdate } from './update';
import { SecAggSession, type DistributedDpMechanism, type SecAggInputInfo } from './secagg-client';
import { SecAggError } from '../shared/secagg/errors';
import { ImpossibleBudgetError } from '../shared/privacy/calibrate';
import { BudgetExceededError } from './ledger';
import type { ConsortiumDirectory } from '../shared/secagg/keys';
import { ABORT_CODE_PATTERN, keyFingerprint } from '../protocol';

export interface AgentOptions {
  coordinatorUrl: string;
  bankId: string;
  schemaHash: string;
  /** Builds the trainer once the coordinator has told us the model configuration. */
  createTrainer: (modelConfigJson: string) => Promise<LocalTrainer>;
  /** The bank's rows, encoded for a round by the transformer it announces (or the schema-only one). */
  dataset: { prepare(transformerJson: string | undefined): PreparedData };
  identity: Identity;
  /** The consortium's coordinator signing key; without it the key of the first Welcome is pinned. */
  coordinatorKey?: Uint8Array;
  /** Where the pinned key came from (a flag, a pin file), for the message when the coordinator's key differs. */
  coordinatorKeySource?: string;
  onCoordinatorKeyPinned?: (key: Uint8Array, fingerprint: string) => void;
  log: Logger;
  /** Exit (resolve `done`) when the coordinator announces that training is finished. */
  exitWhenFinished?: boolean;
  reconnectDelayMs?: number;
  reconnectDelayMaxMs?: number;
  maxFrameBytes?: number;
  /**
   * Produces the bank's DP-noised summary (charged to its ledger), sent once after registration:
   * `requested` is what the coordinator's model configuration asks for (else the conditional columns).
   */
  summarize: (
    requested: { column: string; dim: number }[],
    condSpans: { column: string; offset: number; dim: number }[],
  ) => { counts: { column: string; values: number[] }[]; epsilon: number; delta: number; noiseStd: number };
  /**
   * Label calibration after the last round: adds Gaussian noise at the planned noise multiplier to
   * the exact per-bin counts and charges the ledger first (client-node/dp-calibration.ts); throwing
   * (budget) releases nothing. Absent: the bank ignores calibration requests.
   */
  releaseCalibration?: (
    exact: { rows: number[]; positives: number[] },
    noiseMultiplier: number,
  ) => { rows: number[]; positives: number[]; noiseStd: number; epsilon: number; delta: number };
  /**
   * Two-way counts for the generator's pair targets: adds Gaussian noise at the planned noise
   * multiplier to the exact tables and charges the ledger first (client-node/dp-pair-counts.ts);
   * throwing (budget) releases nothing. Called once per run, before the first round's training, so
   * the charge is in the ledger when DP-SGD's noise is calibrated; the noisy tables then go with
   * every update (post-processing). Absent: the bank releases none.
   */
  releasePairCounts?: (exact: PairTable[], noiseMultiplier: number) => { tables: PairTable[]; noiseSd: number; epsilon: number; cached: boolean };
  /** ε the bank has spent in total (ledger), reported with every update. */
  epsilonSpent: () => { epsilon: number; delta: number };
  /**
   * Client-level DP (DP-FedAvg): called on the clipped update before it is masked or sent; charges
   * the ledger first, then adds the bank's share of the noise in place. Throwing stops the send.
   */
  privatizeUpdate?: (update: { name: string; shape: number[]; data: Float32Array }[], info: { roundId: number; clipNorm: number }) => void;
  /**
   * Distributed DP (secure aggregation with Skellam noise in the ring, set by the coordinator): called
   * with the round's mechanism, re-derived from the public round parameters, before the update is
   * noised, masked and sent. Charges the ledger; throwing (budget, noise below this bank's floor) stops the send.
   */
  chargeDistributedDp?: (c: { roundId: number; mechanism: DistributedDpMechanism }) => void;
  onRound?: (info: { roundId: number; metrics: Record<string, number>; seconds: number }) => void;
  /** Observes every byte this agent sends (tests use it to prove no raw data leaves the bank). */
  onSend?: (bytes: Uint8Array) => void;
  /** Test hook: the bank's own plaintext update just before it is masked (secure aggregation; it never leaves the bank). */
  onSecAggInput?: (info: SecAggInputInfo) => void;
  /**
   * The consortium directory (bank id → Ed25519 public key, from the operator's allow-list file):
   * every secure-aggregation key list is verified against it, so the coordinator cannot substitute a
   * bank's keys. It must list this bank with this bank's own signing key.
   */
  consortiumDirectory?: ConsortiumDirectory;
  /**
   * Explicit opt-out: without a directory, still take part in secure aggregation with UNVERIFIED key
   * lists (a malicious coordinator could substitute keys and unmask this bank's update). Without a
   * directory and without this, the bank refuses every secure-aggregation round (KEY_LIST_NO_DIRECTORY).
   */
  unverifiedKeyLists?: boolean;
  /** Told whenever this bank refuses a secure-aggregation round (status file, alerts). */
  onSecAggRefused?: (info: { roundId: number; code: string; message: string }) => void;
}

/** How this agent treats secure-aggregation key lists; see AgentOptions.consortiumDirectory. */
export type KeyListVerification = 'verified' | 'unverified' | 'refused';

export function keyListVerification(o: Pick<AgentOptions, 'consortiumDirectory' | 'unverifiedKeyLists'>): KeyListVerification {
  return o.consortiumDirectory ? 'verified' : o.unverifiedKeyLists ? 'unverified' : 'refused';
}

export interface RunningAgent {
  done: Promise<void>;
  stop(): void;
  readonly roundsTrained: number;
}

export class AgentFatalError extends Error {
  override name = 'AgentFatalError';
}

// Codes after which retrying cannot help: a person must fix configuration.
const FATAL_CODES = new Set(['UNKNOWN_SENDER', 'SCHEMA_MISMATCH', 'UNSUPPORTED_VERSION', 'BAD_SIGNATURE']);

export function startAgent(opts: AgentOptions): RunningAgent {
  const log = opts.log;
  const verification = keyListVerification(opts);
  const directory = opts.consortiumDirectory;
  if (directory) {
    const mine = directory.get(opts.bankId);
    if (!mine) throw new AgentFatalError(`the consortium directory does not list this bank ('${opts.bankId}'); ask the operator for the current allow-list`);
    if (Buffer.compare(Buffer.from(mine), Buffer.from(opts.identity.sign.publicKey)) !== 0) {
      throw new AgentFatalError(`the consortium directory lists '${opts.bankId}' with key ${keyFingerprint(mine)}, but this bank's identity key is ${keyFingerprint(opts.identity.sign.publicKey)}`);
    }
    log.info('secagg_key_verification', { verification, banks: [...directory.keys()].sort() });
  } else if (verification === 'unverified') {
    log.warn('secagg_key_verification', {
      verification,
      note: 'no consortium directory: secure-aggregation key lists are NOT verified; a malicious coordinator could substitute keys and unmask this bank\'s update',
    });
  } else {
    log.warn('secagg_key_verification', {
      verification,
      note: 'no consortium directory: this bank refuses every secure-aggregation round (KEY_LIST_NO_DIRECTORY); configure the consortium directory or opt out explicitly',
    });
  }
  // The coordinator's key as pinned (configured, or first use): bound into every advert signature.
  let coordinatorKey = opts.coordinatorKey;
  const wire = new AgentWire({
    bankId: opts.bankId,
    identity: opts.identity,
    maxFrameBytes: opts.maxFrameBytes ?? 32 * 1024 * 1024,
    coordinatorKey: opts.coordinatorKey,
    onPinned: (key, fingerprint) => {
      coordinatorKey = key;
      log.warn('coordinator_key_pinned_on_first_use', { fingerprint });
      opts.onCoordinatorKeyPinned?.(key, fingerprint);
    },
  });
  let trainer: LocalTrainer | null = null;
  let trainerConfig = '';
  let busy: Promise<void> = Promise.resolve();
  let stopped = false;
  let roundsTrained = 0;
  // The consortium transformer of the latest round (label calibration encodes the rows with it).
  let lastTransformerJson: string | undefined;
  // One calibration release per agent run: the one its DP-SGD noise was planned with.
  let calibrationSent = false;
  // The DP-noised pair counts, once released (null: none planned or this bank releases none).
  let pairCounts: { noiseStd: number; tables: PairTable[] } | null | undefined;
  // Secure aggregation: the session of the latest RoundStart (key steps run outside the training queue).
  let secagg: SecAggSession | null = null;
  const secaggOf = new WeakMap<RoundStartMessage, SecAggSession>();
  let resolveDone!: () => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });

  const socket: Socket = io(opts.coordinatorUrl, {
    transports: ['websocket'],
    reconnection: true,
    reconnectionDelay: opts.reconnectDelayMs ?? 500,
    reconnectionDelayMax: opts.reconnectDelayMaxMs ?? 10_000,
    randomizationFactor: 0.5,
    timeout: 10_000,
  });

  const send = (bytes: Uint8Array): void => {
    opts.onSend?.(bytes);
    socket.emit('frame', bytes);
  };

  const finish = (err?: Error): void => {
    if (stopped) return;
    stopped = true;
    secagg?.cancel('agent stopped');
    socket.close();
    if (err) rejectDone(err);
    else resolveDone();
  };

  socket.on('connect', () => {
    log.info('connected', { coordinator: opts.coordinatorUrl });
    send(wire.register(opts.schemaHash));
  });
  socket.on('disconnect', (reason) => {
    if (!stopped) log.warn('disconnected', { reason, retrying: socket.active });
  });
  socket.on('connect_error', (err) => {
    log.warn('connect_failed', { error: err.message });
  });

  socket.on('frame', (payload: unknown) => {
    const decoded = wire.decode(payload);
    if (!decoded.ok) {
      if (decoded.keyChanged) {
        // The handshake cannot complete: every frame will fail the same way. Say so and stop
        // (as ssh does for a changed host key) rather than wait forever.
        const { pinned, presented } = decoded.keyChanged;
        log.error('coordinator_key_mismatch', { pinned, presented, pinnedFrom: opts.coordinatorKeySource ?? 'this agent' });
        finish(
          new AgentFatalError(
            `the coordinator presents signing key ${presented}, but this bank pinned ${pinned} (${opts.coordinatorKeySource ?? 'given to this agent'}). ` +
              "If the operator re-created the coordinator's identity, confirm its new key out of band (the operator's <state-dir>/coordinator-public.json) " +
              'and start the agent with --coordinator-key <that file or key>; otherwise something else is answering as the coordinator',
          ),
        );
        return;
      }
      log.warn('bad_frame_from_coordinator', { code: decoded.rejection.code, reason: decoded.rejection.message });
      return;
    }
    const msg = decoded.message;
    switch (msg.type) {
      case 'welcome':
        log.info('registered', { bank: msg.bankId, round: msg.currentRound });
        if (msg.modelConfigJson !== trainerConfig) {
          const cfg = msg.modelConfigJson;
          busy = busy.then(async () => {
            trainer?.dispose();
            trainer = await opts.createTrainer(cfg);
            trainerConfig = cfg;
            pairCounts = undefined;
            wire.setModelSpec(trainer.getWeights().map((t) => ({ name: t.name, shape: [...t.shape] })));
          }).catch((err) => finish(new AgentFatalError(`cannot build the consortium model: ${(err as Error).message}`)));
        }
        busy = busy.then(() => sendSummary()).catch((err) => finish(new AgentFatalError(`cannot release the DP summary: ${(err as Error).message}`)));
        return;
      case 'roundStart':
        startSecAgg(msg);
        // Rounds are handled one at a time; a retried round simply queues behind the current one.
        busy = busy.then(() => trainRound(msg)).catch((err) => {
          if (err instanceof BudgetExceededError || err instanceof ImpossibleBudgetError) {
            // Permanent under this budget: every later round would be refused the same way. Stop,
            // so the operator sees the bank leave instead of a round failing at each deadline.
            log.error('privacy_budget_exhausted', { round: msg.roundId, error: (err as Error).message });
            finish(new AgentFatalError(`refusing to train round ${msg.roundId}: ${(err as Error).message}`));
            return;
          }
          log.error('round_failed_locally', { round: msg.roundId, error: (err as Error).message });
        });
        return;
      case 'secaggKeyList':
      case 'secaggForwardedShares':
      case 'secaggUnmaskRequest':
        onSecAggStep(msg);
        return;
      case 'calibrationRequest':
        busy = busy.then(() => sendCalibration(msg)).catch((err) => {
          log.error('label_calibration_refused', { modelVersion: msg.modelVersion, error: (err as Error).message });
        });
        return;
      case 'roundResult':
        if (secagg?.roundId === msg.roundId && msg.status !== 'committed') secagg.cancel(`round ${msg.status}`);
        log.info('round_result', { round: msg.roundId, status: msg.status, modelVersion: msg.modelVersion, banks: msg.banksAggregated });
        if (msg.status === 'finished' && opts.exitWhenFinished) finish();
        return;
      case 'error':
        log.warn('coordinator_error', { code: msg.code, reason: msg.message, round: msg.roundId });
        if (FATAL_CODES.has(msg.code)) finish(new AgentFatalError(`coordinator refused this bank: ${msg.code}: ${msg.message}`));
        return;
    }
  });

  function sendSummary(): void {
    if (stopped || !trainer) return;
    const spans = trainer.conditionalSpans();
    const requested = summaryRequest(trainerConfig) ?? spans.map(({ column, dim }) => ({ column, dim }));
    if (requested.length === 0) return;
    const summary = opts.summarize(requested, spans);
    send(wire.summary(summary));
    log.info('summary_sent', { columns: summary.counts.length, epsilon: summary.epsilon, noiseStd: Number(summary.noiseStd.toFixed(3)) });
  }

  /**
   * DP-noised counts of this bank's rows per bin of the published C's score (charged to the ledger
   * before they are sent). Refused unless this bank trained in this run, the consortium planned the
   * release, and none was sent yet: the coordinator cannot make a bank spend budget it did not plan.
   */
  function sendCalibration(msg: CalibrationRequestMessage): void {
    if (stopped) return;
    if (!opts.releaseCalibration || !trainer?.calibrationCounts) throw new Error('this agent does not release label calibration counts');
    if (roundsTrained === 0) throw new Error('no round was trained in this run: nothing to calibrate');
    if (calibrationSent) throw new Error('a calibration release was already sent in this run (one is planned)');
    const data = opts.dataset.prepare(lastTransformerJson);
    const { counts, noiseMultiplier } = trainer.calibrationCounts(data, msg);
    const noisy = opts.releaseCalibration(counts, noiseMultiplier);
    calibrationSent = true;
    send(wire.calibrationCounts({ modelVersion: msg.modelVersion, ...noisy, epsilonSpent: opts.epsilonSpent().epsilon }));
    log.info('label_calibration_sent', { modelVersion: msg.modelVersion, bins: noisy.rows.length, epsilon: Number(noisy.epsilon.toFixed(4)), noiseStd: Number(noisy.noiseStd.toFixed(2)) });
  }

  /**
   * The bank's pair counts, released (charged, noised) before its first round trains, so the charge
   * is in the ledger when DP-SGD's noise is calibrated. Null when the consortium plans none or this
   * bank does not release them. A budget error propagates: the bank trains nothing.
   */
  function releasePairs(t: LocalTrainer, data: PreparedData): { noiseStd: number; tables: PairTable[] } | null {
    if (!opts.releasePairCounts || !t.pairCounts) return null;
    const exact = t.pairCounts(data);
    if (!exact) return null;
    const released = opts.releasePairCounts(exact.tables, exact.noiseMultiplier);
    log.info(released.cached ? 'pair_counts_reused' : 'pair_counts_charged', {
      pairs: released.tables.length,
      noiseMultiplier: exact.noiseMultiplier,
      noiseSd: Number(released.noiseSd.toFixed(2)),
      epsilon: Number(released.epsilon.toFixed(4)),
      epsilonSpent: Number(opts.epsilonSpent().epsilon.toFixed(4)),
    });
    return { noiseStd: released.noiseSd, tables: released.tables };
  }

  let calibrationSkipLogged = false;
  async function trainRound(msg: RoundStartMessage): Promise<void> {
    if (stopped) return;
    if (!trainer) throw new Error('round started before the model configuration arrived');
    if (Date.now() > msg.deadlineMs) {
      log.warn('round_skipped_past_deadline', { round: msg.roundId });
      return;
    }
    if (msg.secagg && !secaggOf.get(msg)) {
      // Refused at RoundStart (logged as secagg_round_refused): nothing to train for.
      log.warn('round_skipped_secagg_refused', { round: msg.roundId });
      return;
    }
    const t0 = Date.now();
    if (msg.config.labelCalibrationSkipped && !calibrationSkipLogged) {
      calibrationSkipLogged = true;
      log.info('label_calibration_not_planned', { round: msg.roundId, note: 'the coordinator will not ask for the calibration release: its ε is left to DP-SGD' });
    }
    log.info('round_training', { round: msg.roundId, steps: msg.config.localSteps, batch: msg.config.batchSize });
    trainer.setWeights(msg.weights);
    const data = opts.dataset.prepare(msg.transformerJson);
    lastTransformerJson = msg.transformerJson;
    if (pairCounts === undefined) pairCounts = releasePairs(trainer, data);
    const metrics = await trainer.train(data, msg.config, { categoryWeights: msg.categoryWeights, pairTargets: msg.pairTargets }, () => stopped || Date.now() > msg.deadlineMs);
    if (stopped) return;
    if (Date.now() > msg.deadlineMs) {
      log.warn('round_missed_deadline', { round: msg.roundId });
      return;
    }
    const { update, norm, clipped } = prepareUpdate(trainer.getWeights(), msg.weights, msg.config.updateClipNorm);
    const session = secaggOf.get(msg);
    if (msg.secagg && !session) throw new Error(`round ${msg.roundId} uses secure aggregation but this bank has no session for it`);
    // With distributed DP in the round the noise is added in the ring (and charged) by the session;
    // the bank's own client-level option is then a floor on that noise (chargeDistributedDp), not a second noise.
    if (!session?.distributedDp) opts.privatizeUpdate?.(update, { roundId: msg.roundId, clipNorm: msg.config.updateClipNorm });
    // Under secure aggregation only the masked, weighted update leaves the bank (and m = min(rows, cap)).
    // The FedAvg weight is the released row count: the exact one never leaves the bank (dp-row-count.ts).
    const masked = session ? await session.mask(update, data.publicRows, msg.deadlineMs) : undefined;
    const bytes = wire.update({
      roundId: msg.roundId,
      modelVersion: msg.modelVersion,
      sampleCount: masked ? masked.sampleCount : data.publicRows,
      tensors: masked ? [] : update,
      ...(masked ? { maskedTensors: masked.maskedTensors } : {}),
      metrics: { ...metrics, updateNorm: norm, updateClipped: clipped ? 1 : 0 },
      ...reportedSpend(trainer, opts.epsilonSpent()),
      ...(pairCounts ? { pairCounts } : {}),
    });
    if (!socket.connected) {
      log.warn('update_not_sent_disconnected', { round: msg.roundId });
      return;
    }
    send(bytes);
    roundsTrained += 1;
    const seconds = (Date.now() - t0) / 1000;
    log.info('update_sent', { round: msg.roundId, bytes: bytes.byteLength, seconds: Number(seconds.toFixed(2)), ...roundMetrics(metrics) });
    opts.onRound?.({ roundId: msg.roundId, metrics, seconds });
  }

  function refused(roundId: number, step: string, err: unknown): void {
    const code = err instanceof SecAggError ? err.code : 'SECAGG_SESSION_FAILED';
    const message = (err as Error).message;
    // The code is the first field a reviewer greps for: KEY_LIST_* = the coordinator relayed a key list this bank must not use.
    log.error('secagg_round_refused', { code, round: roundId, step, verification, error: message });
    opts.onSecAggRefused?.({ roundId, code, message });
    // Tell the coordinator, so it drops this bank now (not at the step timeout) and the operator sees why.
    try {
      if (socket.connected) send(wire.secaggAbort({ roundId, code: ABORT_CODE_PATTERN.test(code) ? code : 'SECAGG_SESSION_FAILED', message: message.slice(0, 2000) }));
    } catch (e) {
      log.warn('secagg_abort_not_sent', { round: roundId, error: (e as Error).message });
    }
  }

  function startSecAgg(msg: RoundStartMessage): void {
    secagg?.cancel('superseded by a new round start');
    secagg = null;
    if (!msg.secagg || stopped) return;
    if (verification === 'refused') {
      refused(msg.roundId, 'roundStart', new SecAggError('KEY_LIST_NO_DIRECTORY', 'this bank has no consortium directory, so it cannot verify the key list; it does not take part in secure aggregation'));
      return;
    }
    try {
      const layout = msg.weights.map((t) => ({ name: t.name, shape: [...t.shape] }));
      const session = new SecAggSession({
        bankId: opts.bankId,
        roundId: msg.roundId,
        params: msg.secagg,
        layout,
        onInput: opts.onSecAggInput,
        ...(opts.chargeDistributedDp ? { chargeDistributedDp: opts.chargeDistributedDp } : {}),
        signingKey: opts.identity.sign.secretKey,
        ...(directory ? { directory } : {}),
        ...(coordinatorKey ? { coordinatorKey } : {}),
        deadlineMs: msg.deadlineMs,
      });
      secaggOf.set(msg, session);
      secagg = session;
      send(wire.secaggAdvertiseKeys(session.advertise()));
      log.info('secagg_keys_advertised', { round: msg.roundId, cohort: msg.secagg.cohort.length, threshold: msg.secagg.threshold, verification });
      if (verification === 'unverified') log.warn('secagg_key_list_unverified', { round: msg.roundId, note: 'no consortium directory configured' });
    } catch (err) {
      refused(msg.roundId, 'roundStart', err);
    }
  }

  function onSecAggStep(msg: Extract<DecodedMessage, { type: 'secaggKeyList' | 'secaggForwardedShares' | 'secaggUnmaskRequest' }>): void {
    const session = secagg;
    if (!session || session.roundId !== msg.roundId || stopped) {
      log.warn('secagg_unexpected_step', { type: msg.type, round: msg.roundId });
      return;
    }
    try {
      if (msg.type === 'secaggKeyList') {
        send(wire.secaggShareKeys(session.onKeyList(msg)));
        log.info('secagg_key_list_accepted', { round: msg.roundId, banks: msg.keys.length, verification });
      } else if (msg.type === 'secaggForwardedShares') session.onForwarded(msg);
      else {
        send(wire.secaggUnmaskResponse(session.onUnmaskRequest(msg)));
        log.info('secagg_unmask_sent', { round: msg.roundId, survivors: msg.survivors.length, dropped: msg.dropped.length });
      }
    } catch (err) {
      // A refused step (forged key list, tampered bundle, contradictory unmask request, ...) drops this
      // bank from the round: nothing more is sent for it. The protocol has no bank → coordinator error
      // message; the coordinator sees the bank miss the step (secagg_bank_missed_step) and drops it.
      refused(msg.roundId, msg.type, err);
      session.cancel(`refused ${msg.type}`);
    }
  }

  return {
    done,
    stop: () => finish(),
    get roundsTrained() {
      return roundsTrained;
    },
  };
}

/** Without DP-SGD the model has no finite guarantee, whatever the ledger says about the summary. */
function reportedSpend(trainer: LocalTrainer, ledger: { epsilon: number; delta: number }): { epsilonSpent: number; delta: number } {
  const t = trainer.epsilonSpent();
  return { epsilonSpent: Math.max(t, ledger.epsilon), delta: Math.max(trainer.delta(), ledger.delta) };
}

/** The summary columns a coordinator's model configuration asks for, if it names them. */
function summaryRequest(modelConfigJson: string): { column: string; dim: number }[] | undefined {
  try {
    const s = (JSON.parse(modelConfigJson) as { summary?: { column: string; dim: number }[] }).summary;
    return Array.isArray(s) ? s.map(({ column, dim }) => ({ column, dim })) : undefined;
  } catch {
    return undefined;
  }
}

function roundMetrics(m: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) out[k] = Number(v.toFixed(4));
  return out;
}
