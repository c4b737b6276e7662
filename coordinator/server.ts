// The coordinator's socket.io edge: decodes frames with the protocol codec, turns them into calls on
// the RoundManager, and never lets a client's input crash the process (every handler is guarded and
// every rejection is answered with a specific error code and counted).

import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import type { Logger } from '../shared/log/logger';
import { RoundManager, type RoundPolicy, type TrainingPlan } from './rounds';
import type { Strategy, Tensors } from './strategy/types';
import { emaGenerator, emaWarmupBeta } from './strategy/aggregate';
import { CoordinatorWire, type DpPlan, type WireRejection } from './wire';
import { LIMITS, keyFingerprint, recommendedMaxHttpBufferSize, type Identity } from '../protocol';
import type { Persistence } from './persistence';
import { Metrics } from './metrics';
import { SummaryBook } from './summaries';
import type { ColumnCounts } from '../protocol';
import { SamplingService, type ModelSource } from './sampling-service';
import type { DecodedMessage } from '../protocol';
import { SECAGG_MIN_BANKS, SecAggRound, checkSecureAggregationPolicy, planRoundRing, type SecAggRejection, type SecureAggregationSettings } from './secagg-round';
import { defaultThreshold } from '../shared/secagg';
import { planLabelCalibration } from '../shared/sampling/label-calibration-round';
import type { SpanPair } from '../shared/transformer/pair-counts';
import { PairBook } from './pair-book';
import type { PairTable } from '../protocol';
import { CALIBRATION_MIN_POSITIVES_PER_NOISE_SD, calibrationSkipReason, fitFromNoisyCounts } from '../shared/model/label-calibration';

export interface CoordinatorOptions {
  host: string;
  port: number;
  schemaHash: string;
  /** JSON the banks need to build the identical model (architecture config + transformer state). */
  modelConfigJson: string;
  policy: RoundPolicy;
  plan: TrainingPlan;
  strategy: Strategy;
  persistence: Persistence;
  /** Initial global weights, used only when the store holds no committed model yet. */
  initialWeights: () => Tensors;
  /** The consortium's banks and their public keys; empty or undefined = open registration (development only). */
  allowList?: Map<string, { signPublicKey: Uint8Array; boxPublicKey: Uint8Array }>;
  /** The coordinator's own signing identity; banks pin its public key. */
  identity: Identity;
  /** Record-level DP settings sent to banks with every round. */
  dp: DpPlan;
  /** The columns (name, number of counts) banks summarise with DP-noised counts or histograms. */
  summaryColumns: { column: string; dim: number }[];
  /**
   * Fits the consortium transformer from the merged DP-noised summaries (post-processing only) when
   * the first round starts; its state travels in every RoundStart and checkpoint. Absent: the
   * transformer follows from the schema alone.
   */
  /** noiseStd: per merged column, the sd of the noise in its counts. */
  fitTransformer?: (merged: ColumnCounts[], noiseStd: number[]) => unknown;
  /**
   * The category weights for the fitted transformer state from the unclamped merged sums
   * (pooledCategoryWeights for the gmm transformer). Absent: the clamped merge.
   */
  categoryWeightsFor?: (fitted: unknown, rawSums: ColumnCounts[]) => ColumnCounts[];
  maxFrameBytes: number;
  /** Committed model versions, for the signed model and sampling endpoints (/models, /sample); absent = not served. */
  models?: ModelSource;
  /** Most rows one GET /sample may ask for (default 100,000). */
  maxSampleRows?: number;
  /**
   * Secure aggregation (secagg-round.ts): when set, every round runs it and the coordinator never
   * decodes a bank's plaintext update; needs policy.minClients ≥ 3. Absent: plaintext updates.
   */
  secureAggregation?: SecureAggregationSettings;
  /**
   * β of the generator's moving average over rounds in the PUBLISHED model (checkpoints, /models,
   * /sample); training continues from the plain FedAvg model. 0 or absent = publish FedAvg as is.
   * After a restart training resumes from the last published model (whose G is the average).
   */
  generatorEma?: number;
  /**
   * After the last round: ask every connected bank for DP-noised counts of its rows per bin of the
   * published classifier C's score, at this noise multiplier (planned by the banks from the model
   * configuration), fit the map that calibrates C's labels (shared/model/label-calibration.ts) and
   * publish it as the next model version. Waits at most timeoutMs (default 120 s) for the banks.
   * `column`: the target C labels. When the category weights freeze, a class too rare for the
   * release's noise (calibrationSkipReason) cancels it in advance: every RoundStart then says so,
   * and the banks spend its planned ε on DP-SGD instead. Absent: no calibration.
   */
  labelCalibration?: { noiseMultiplier: number; column: string; timeoutMs?: number };
  /**
   * The pairs of the transformer's softmax spans whose two-way counts the banks release (planned in
   * the model configuration). Each bank's DP-noised tables come with its updates; at every round start
   * the coordinator merges the latest tables of every bank that sent them (mergePairTargets,
   * post-processing) and sends the result as the generator's pair targets. Saved whenever a bank's
   * release changes, restored at start. Absent: none planned, and a bank's pair counts are refused.
   */
  pairCounts?: { pairs: SpanPair[] };
  /** Observes every frame decoded from a bank (tests record what the coordinator received). */
  onFrame?: (bankId: string | undefined, msg: DecodedMessage) => void;
  log: Logger;
}

export interface RunningCoordinator {
  url: string;
  port: number;
  rounds: RoundManager;
  metrics: Metrics;
  /** Resolves when maxRounds rounds have been committed (or the round was abandoned). */
  finished: Promise<void>;
  close(): Promise<void>;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = opts.log;
  const secure = opts.secureAggregation;
  checkSecureAggregationPolicy({ secureAggregation: secure !== undefined, minClients: opts.policy.minClients });
  if (secure && !opts.strategy.aggregateFromSum) throw new Error(`strategy '${opts.strategy.name}' cannot aggregate from a sum, so it cannot run under secure aggregation`);
  const metrics = new Metrics();
  const restored = opts.persistence.load();
  const weights = restored?.weights ?? opts.initialWeights();
  // The last published model: the generator EMA continues from it after a restart; none before the first commit.
  let published: Tensors | undefined = restored && restored.roundsCommitted > 0 ? restored.weights : undefined;
  const spec = weights.map((t) => ({ name: t.name, shape: [...t.shape] }));
  const allowList = opts.allowList && opts.allowList.size > 0 ? opts.allowList : undefined;
  const tofuKeys = new Map<string, Uint8Array>();
  const wire = new CoordinatorWire({
    identity: opts.identity,
    maxFrameBytes: opts.maxFrameBytes,
    modelSpec: spec,
    schemaHash: opts.schemaHash,
    keyOf: (id) => allowList?.get(id)?.signPublicKey ?? tofuKeys.get(id),
    openRegistration: !allowList,
    refusePlainUpdates: secure !== undefined,
  });
  if (!allowList) log.warn('open_registration', { note: 'no allow-list configured: any bank id can join (development only)' });
  if (secure?.distributedDp) {
    // Fail at start-up, not at the first round, when the noise cannot fit the 32-bit ring: check the
    // smallest and the largest cohort this coordinator can run (allow-list size, else the protocol cap).
    const d = spec.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    const largest = Math.min(LIMITS.maxSecAggBanks, allowList?.size ?? LIMITS.maxSecAggBanks);
    for (const n of new Set([Math.max(SECAGG_MIN_BANKS, opts.policy.minClients), Math.max(SECAGG_MIN_BANKS, largest)])) {
      try {
        planRoundRing({ clipNorm: opts.plan.updateClipNorm, cohortSize: n, threshold: defaultThreshold(n), vectorLength: d, distributedDp: secure.distributedDp });
      } catch (err) {
        throw new Error(`--distributed-dp-noise ${secure.distributedDp.noiseMultiplier} cannot be planned for rounds of ${n} banks: ${(err as Error).message}`);
      }
    }
  }
  if (restored) {
    log.info('resumed', { modelVersion: restored.modelVersion, nextRound: restored.nextRoundId, roundsCommitted: restored.roundsCommitted });
  } else {
    opts.persistence.saveInitial(weights);
  }

  const sockets = new Map<string, Socket>(); // bankId -> live socket
  const summaries = new SummaryBook(restored?.categoryWeights);
  // Why the label calibration will not be asked for, once decided at the first round (and persisted).
  let calibrationSkipped: string | undefined = restored?.labelCalibrationSkipped;
  let transformerJson: string | undefined = restored?.transformer !== undefined ? JSON.stringify(restored.transformer) : undefined;
  // Round timing for /metrics: start of the open round, and when its last update was accepted.
  let roundStartedAt = Date.now();
  let lastUpdateAt = 0;
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));

  const send = (bankId: string, bytes: Uint8Array): void => {
    const s = sockets.get(bankId);
    if (!s) return;
    metrics.bytesSent += bytes.byteLength;
    s.emit('frame', bytes);
  };
  // Each bank's latest DP-noised pair counts, and the targets merged from them for the open round.
  const pairBook = opts.pairCounts ? new PairBook(opts.pairCounts.pairs, opts.persistence.pairCounts()) : undefined;
  if (pairBook && (pairBook.size > 0 || pairBook.dropped.length > 0)) log.info('pair_counts_restored', { banks: pairBook.bankIds(), dropped: pairBook.dropped });
  let pairTargets: PairTable[] | undefined;
  // The open round's secure aggregation (when on); replaced at every round start.
  let secagg: SecAggRound | null = null;
  let roundStartFrame: { key: unknown[]; bytes: Uint8Array } | undefined;

  const rounds = new RoundManager(
    opts.strategy,
    opts.policy,
    opts.plan,
    {
      sendRoundStart: (bankId, m) => {
        // Every participant gets the same RoundStart (nothing in it names the recipient), so it is
        // encoded and signed once per round attempt, not once per bank: with 200 banks and a 1 MB
        // model that is most of the coordinator's per-round CPU.
        const sa = secagg?.roundId === m.roundId ? secagg.params : undefined;
        const key = [m.roundId, m.modelVersion, m.seed, m.deadlineMs, m.weights, m.plan, transformerJson, summaries.weights, sa, calibrationSkipped, pairTargets];
        if (!roundStartFrame || roundStartFrame.key.length !== key.length || roundStartFrame.key.some((k, i) => k !== key[i])) {
          roundStartFrame = {
            key,
            bytes: wire.roundStart({ ...m, dp: opts.dp, categoryWeights: summaries.weights, transformerJson, ...(pairTargets ? { pairTargets } : {}), ...(sa ? { secagg: sa } : {}), ...(calibrationSkipped !== undefined ? { labelCalibrationSkipped: true } : {}) }),
          };
        }
        send(bankId, roundStartFrame.bytes);
      },
      secureSum: async (roundId, results) => {
        if (!secure) return null;
        if (!secagg || secagg.roundId !== roundId) throw new Error(`no secure-aggregation state for round ${roundId}`);
        return secagg.secureSum(results);
      },
      sendRoundResult: (bankId, m) => send(bankId, wire.roundResult(m)),
      commit: async (round) => {
        // What gets published: the generator and the classifier averaged over rounds (emaGenerator); RoundManager keeps training the plain model.
        const beta = published ? emaWarmupBeta(opts.generatorEma ?? 0, round.modelVersion) : 0;
        published = emaGenerator(published, round.weights, beta);
        await opts.persistence.commit({ ...round, weights: published, published: { generatorEma: beta } });
        const now = Date.now();
        metrics.roundsCommitted += 1;
        metrics.observeRoundDuration((now - roundStartedAt) / 1000);
        // Aggregation + durable commit: from the update that completed the round to the commit.
        metrics.observeRound((now - Math.max(lastUpdateAt, roundStartedAt)) / 1000);
      },
      recordFailure: (roundId, reason, failures) => {
        // A failed attempt's secure-aggregation state is dead: a retry starts over with fresh keys.
        if (secagg?.roundId === roundId) secagg.close();
        metrics.roundsFailed += 1;
        opts.persistence.recordFailure(roundId, reason, failures);
      },
      onRoundStarted: (roundId, participants) => {
        roundStartedAt = Date.now();
        pairTargets = mergedPairTargets(roundId);
        wire.advanceRound(roundId);
        secagg?.close();
        secagg = null;
        if (secure) {
          // Checked at start-up for the smallest and largest cohort, so this should not throw.
          secagg = new SecAggRound({
            roundId,
            cohort: participants,
            layout: spec,
            clipNorm: opts.plan.updateClipNorm,
            settings: secure,
            send: {
              keyList: (id, m) => send(id, wire.secaggKeyList(m)),
              forwardedShares: (id, m) => send(id, wire.secaggForwardedShares(m)),
              unmaskRequest: (id, m) => send(id, wire.secaggUnmaskRequest(m)),
            },
            drop: (id, reason) => rounds.dropFromRound(id, reason),
            abort: (reason) => rounds.abortRound(roundId, reason),
            log: log.child('secagg'),
          });
        }
        if (opts.summaryColumns.length > 0 && !summaries.weights) {
          const columnNoise = summaries.columnNoiseStd(participants);
          const noiseStd = Math.max(0, ...columnNoise);
          // The transformer is fitted from the clamped merge; the weights then pool its merged rare
          // categories from the unclamped sums (pooledCategoryWeights).
          let fitted: unknown;
          const weights = summaries.freeze(participants, (clamped, raw) => {
            fitted = opts.fitTransformer?.(clamped, columnNoise);
            return fitted !== undefined && opts.categoryWeightsFor ? opts.categoryWeightsFor(fitted, raw) : clamped;
          });
          if (fitted !== undefined) transformerJson = JSON.stringify(fitted);
          // Decided now, from the frozen counts, so that no bank reserves ε for a release never asked for.
          const lc = opts.labelCalibration;
          const skip = lc ? calibrationSkipReason(weights.find((w) => w.column === lc.column)?.values, lc.noiseMultiplier, participants.length) : null;
          if (skip !== null) calibrationSkipped = skip;
          opts.persistence.saveCategoryWeights(weights, fitted, skip !== null ? { labelCalibrationSkipped: skip } : {});
          log.info('category_weights_frozen', { banks: participants, columns: weights.map((w) => w.column), noiseStd: Number(noiseStd.toFixed(2)), transformerFitted: fitted !== undefined });
          if (skip !== null) log.info('label_calibration_skipped', { reason: `${skip}; decided before the first round, so the banks plan no ε for it` });
        }
      },
      onFinished: () => {
        // The banks hear 'finished' (and may exit) only after the calibration release is in.
        void calibrateLabels()
          .catch((err) => log.error('label_calibration_failed', { error: err instanceof Error ? err.message : String(err) }))
          .then(() => {
            for (const id of sockets.keys()) {
              send(id, wire.roundResult({ roundId: rounds.currentRoundId, modelVersion: publishedVersion ?? rounds.modelVersion, banksAggregated: 0, status: 'finished', message: 'training finished' }));
            }
            resolveFinished();
          });
      },
    },
    log.child('rounds'),
    restored ?? { weights, modelVersion: 0, nextRoundId: 1, roundsCommitted: 0 },
  );

  // Label calibration after the last round (opts.labelCalibration): the open request, if any.
  type BankCalibration = { rows: number[]; positives: number[]; noiseStd: number; epsilonSpent: number };
  let calibration: { modelVersion: number; round: number; bins: number; expected: Set<string>; counts: Map<string, BankCalibration>; complete: () => void } | null = null;
  let publishedVersion: number | undefined;
  // Banks whose update this coordinator accepted in this run (label calibration asks only them).
  const trainedBanks = new Set<string>();
  // Set by close(): an open calibration stops waiting and publishes nothing.
  let closing = false;
  let closed: Promise<void> | undefined;

  async function calibrateLabels(): Promise<void> {
    const lc = opts.labelCalibration;
    if (!lc) return;
    // Announced in every RoundStart: the banks planned no ε for it, and would refuse it.
    if (calibrationSkipped !== undefined) {
      log.info('label_calibration_skipped', { reason: `cancelled before the first round: ${calibrationSkipped}` });
      return;
    }
    const latest = opts.persistence.latestModel();
    if (!latest || latest.version === 0) return;
    // A coordinator restarted after training finished: its latest model is already calibrated.
    if (latest.model.meta.labelCalibration) return;
    // The connected banks that trained in this run: a bank's agent answers only after training
    // (it planned the release with its DP-SGD noise), so waiting for any other would only time out.
    const banks = [...sockets.keys()].filter((b) => trainedBanks.has(b));
    if (banks.length === 0) {
      log.warn('label_calibration_skipped', { reason: 'no bank that trained in this run is connected' });
      return;
    }
    // As at the first round, now with the banks still here (fewer banks, less merged noise); before
    // the plan, which generates its reference rows.
    const rare = calibrationSkipReason(latest.model.meta.categoryWeights?.find((w) => w.column === lc.column)?.values, lc.noiseMultiplier, banks.length);
    if (rare !== null) {
      log.info('label_calibration_skipped', { reason: `${rare}; nothing requested, nothing spent` });
      return;
    }
    const plan = planLabelCalibration(latest.model, { seed: latest.version });
    if (!plan) {
      log.info('label_calibration_skipped', { reason: 'the model has no classifier of the target, or no category weights for it' });
      return;
    }
    const counts = new Map<string, BankCalibration>();
    let complete!: () => void;
    const done = new Promise<void>((r) => (complete = r));
    calibration = { modelVersion: latest.version, round: latest.round, bins: plan.edges.length + 1, expected: new Set(banks), counts, complete };
    const request = wire.calibrationRequest({ modelVersion: latest.version, classIndex: plan.classIndex, edges: plan.edges, classifier: plan.classifier });
    for (const id of banks) send(id, request);
    log.info('label_calibration_requested', { modelVersion: latest.version, banks, bins: plan.edges.length + 1, classIndex: plan.classIndex, noiseMultiplier: lc.noiseMultiplier });
    const timeoutMs = lc.timeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    calibration = null;
    if (closing) return;
    if (counts.size === 0) {
      log.warn('label_calibration_skipped', { reason: `no bank answered within ${timeoutMs} ms` });
      return;
    }
    const answered = [...counts.keys()].sort();
    const { calibration: fitted, noiseStd } = fitFromNoisyCounts(plan.edges, plan.reference, plan.classIndex, [...counts.values()]);
    if (!fitted) {
      log.warn('label_calibration_skipped', { reason: `no bin holds ${CALIBRATION_MIN_POSITIVES_PER_NOISE_SD} noise sds (${noiseStd.toFixed(1)} each) of class ${plan.classIndex}'s rows by the banks' noisy counts: the model stays as published`, banks: answered });
      return;
    }
    publishedVersion = opts.persistence.commitLabelCalibration(latest.version, fitted, {
      banks: answered,
      noiseStd,
      epsilonByBank: Object.fromEntries([...counts].map(([b, c]) => [b, c.epsilonSpent])),
    });
    log.info('label_calibration_published', { modelVersion: publishedVersion, ofVersion: latest.version, banks: answered, missing: banks.filter((b) => !counts.has(b)), noiseStd: Number(noiseStd.toFixed(2)), bins: fitted.knots.length });
  }

  /** The pair targets for a round starting now, from every bank's latest tables; undefined before any arrived. */
  function mergedPairTargets(roundId: number): PairTable[] | undefined {
    const targets = pairBook?.targets();
    if (targets) log.info('pair_targets_merged', { round: roundId, banks: pairBook!.bankIds(), pairs: pairBook!.pairs.length, kept: targets.length });
    return targets;
  }

  /**
   * An update's pair counts: refused with the update (false) when the consortium planned none or they
   * do not fit the plan; else kept as the bank's latest release, weighted by the update's sample count. Kept before the update is accepted
   * (the update that completes a round can start the next one inside that call) and even if the update
   * is then refused: they are a DP release of an authenticated bank, whatever became of its update.
   */
  function takePairCounts(socket: Socket, bankId: string, pc: { noiseStd: number; tables: PairTable[] }, weight: number): boolean {
    const problem = pairBook ? pairBook.problem(pc) : 'this consortium plans no pair counts (clientUpdate.pairCounts)';
    if (problem) {
      reject(socket, { code: 'INVALID_FIELD', message: problem }, bankId);
      return false;
    }
    const kept = pairBook!.keep(bankId, pc, weight);
    if (kept !== 'same') {
      opts.persistence.savePairCounts(pairBook!.entries());
      log.info(kept === 'replaced' ? 'pair_counts_replaced' : 'pair_counts_received', { bank: bankId, tables: pc.tables.length, noiseSd: Number(pc.noiseStd.toFixed(2)), banks: pairBook!.size });
    }
    return true;
  }

  const reject = (socket: Socket, rej: WireRejection, bankId?: string): void => {
    metrics.reject(rej.code);
    opts.persistence.recordRejection(bankId ?? `socket:${socket.id}`, rej.code, rej.message);
    log.warn('message_rejected', { bank: bankId, socket: socket.id, code: rej.code, reason: rej.message });
    const bytes = wire.error(rej.code, rej.message, rounds.currentRoundId);
    socket.emit('frame', bytes);
  };

  const sampling = opts.models ? new SamplingService({ models: opts.models, identity: opts.identity, schemaHash: opts.schemaHash, log: log.child('http'), maxRows: opts.maxSampleRows }) : undefined;
  const httpDeps: HttpDeps = {
    rounds,
    metrics,
    persistence: opts.persistence,
    connected: () => [...sockets.keys()],
    sampling,
    secureAggregation: () => ({ enabled: secure !== undefined, ...(secagg ? { round: secagg.status() } : {}) }),
    pairCounts: () => (pairBook ? { pairs: pairBook.pairs.length, banks: pairBook.bankIds(), targetsInOpenRound: pairTargets?.length ?? 0 } : undefined),
  };
  const http = createServer((req, res) => {
    try {
      serveHttp(req, res, httpDeps);
    } catch (err) {
      log.error('http_handler_failed', { path: (req.url ?? '').slice(0, 200), error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'internal error' }));
    }
  });
  const io = new Server(http, {
    // The codec enforces the real cap; socket.io's must be a little larger so our specific error wins.
    maxHttpBufferSize: recommendedMaxHttpBufferSize(opts.maxFrameBytes),
    serveClient: false,
    pingInterval: 10_000,
    pingTimeout: 20_000,
  });

  io.on('connection', (socket) => {
    let bankId: string | undefined;
    metrics.connections += 1;
    log.debug('socket_connected', { socket: socket.id, address: socket.handshake.address });

    socket.on('frame', (payload: unknown) => {
      try {
        if (!(payload instanceof Uint8Array)) return reject(socket, { code: 'MALFORMED', message: 'a frame must be binary protobuf bytes' }, bankId);
        metrics.bytesReceived += payload.byteLength;
        metrics.framesReceived += 1;
        const decoded = wire.decode(payload);
        if (!decoded.ok) return reject(socket, decoded.rejection, bankId);
        const msg = decoded.message;
        opts.onFrame?.(bankId, msg);
        if (bankId && msg.frame.sender !== bankId) {
          return reject(socket, { code: 'INVALID_FIELD', message: `this connection is registered as '${bankId}', the frame is from '${msg.frame.sender}'` }, bankId);
        }
        if (msg.type === 'register') {
          if (allowList && !allowList.has(msg.bankId)) {
            return reject(socket, { code: 'UNKNOWN_SENDER', message: `bank '${msg.bankId}' is not on the consortium allow-list` }, msg.bankId);
          }
          if (msg.schemaHash !== opts.schemaHash) {
            return reject(socket, { code: 'SCHEMA_MISMATCH', message: `bank schema hash ${msg.schemaHash.slice(0, 16)} differs from the consortium schema ${opts.schemaHash.slice(0, 16)}` }, msg.bankId);
          }
          const pinned = allowList?.get(msg.bankId);
          if (pinned && !sameBytes(pinned.boxPublicKey, msg.boxPublicKey)) {
            return reject(socket, { code: 'UNKNOWN_SENDER', message: `bank '${msg.bankId}' registered a key-agreement key that differs from its allow-list entry` }, msg.bankId);
          }
          if (!allowList && msg.frame.verified === 'self') {
            // Open registration (no allow-list): pin the key on first use; later frames must match it.
            tofuKeys.set(msg.bankId, msg.signPublicKey);
            log.warn('bank_key_pinned_on_first_use', { bank: msg.bankId, fingerprint: keyFingerprint(msg.signPublicKey) });
          }
          const previous = sockets.get(msg.bankId);
          if (previous && previous.id !== socket.id) {
            // A reconnecting bank replaces its stale connection; the stale one leaves the open round.
            log.warn('bank_replaced_connection', { bank: msg.bankId });
            previous.disconnect(true);
          }
          bankId = msg.bankId;
          sockets.set(bankId, socket);
          opts.persistence.bankSeen(bankId, msg.signPublicKey, msg.boxPublicKey);
          log.info('bank_registered', { bank: bankId, connected: sockets.size, fingerprint: keyFingerprint(msg.signPublicKey) });
          socket.emit('frame', wire.welcome({ bankId, modelConfigJson: opts.modelConfigJson, currentRound: rounds.currentRoundId }));
          // Until the category weights are fixed, a bank joins rounds only once its DP summary is in.
          if (opts.summaryColumns.length === 0 || summaries.has(bankId)) rounds.bankConnected(bankId);
          return;
        }
        if (!bankId) return reject(socket, { code: 'NOT_REGISTERED', message: `'${msg.type}' sent before registration` });
        if (msg.type === 'clientUpdate' && secure) {
          // Only masked inputs: a plaintext update was already refused by the codec, unparsed.
          if (msg.tensors.length) return reject(socket, { code: 'SECURE_AGGREGATION_REQUIRED', message: 'this coordinator runs secure aggregation: send maskedTensors' }, bankId);
          if (!msg.maskedTensors?.length) return reject(socket, { code: 'MISSING_FIELD', message: 'this round expects a masked update (clientUpdate.maskedTensors)' }, bankId);
          if (msg.pairCounts && !takePairCounts(socket, bankId, msg.pairCounts, msg.sampleCount)) return;
          const early = rounds.checkUpdate(bankId, msg.roundId, msg.modelVersion, msg.sampleCount);
          if (early) return reject(socket, early, bankId);
          if (!secagg) return reject(socket, { code: 'STALE_ROUND', message: 'no secure-aggregation round is open' }, bankId);
          const checked = secagg.checkMaskedInput(bankId, msg.roundId, msg.sampleCount, msg.maskedTensors);
          if (!('flat' in checked)) return reject(socket, checked, bankId);
          const added = secagg.addMaskedInput(bankId, checked.flat);
          if (added) return reject(socket, added, bankId);
          // The RoundManager holds no update for this bank, only its public metadata. Marked as
          // trained first: the update that completes the last round can finish training inside the call.
          const had = trainedBanks.has(bankId);
          trainedBanks.add(bankId);
          const rej = rounds.acceptUpdate(bankId, msg.roundId, msg.modelVersion, { bankId, sampleCount: msg.sampleCount, update: [], metrics: msg.metrics }, msg.epsilonSpent);
          if (rej) {
            if (!had) trainedBanks.delete(bankId);
            return reject(socket, rej, bankId);
          }
          lastUpdateAt = Date.now();
          opts.persistence.recordSpend(bankId, msg.roundId, msg.epsilonSpent, msg.delta);
          return;
        }
        if (msg.type === 'secaggAdvertiseKeys' || msg.type === 'secaggShareKeys' || msg.type === 'secaggUnmaskResponse' || msg.type === 'secaggAbort') {
          if (!secure) return reject(socket, { code: 'UNEXPECTED_MESSAGE', message: 'secure aggregation is off on this coordinator' }, bankId);
          if (!secagg) return reject(socket, { code: 'STALE_ROUND', message: 'no secure-aggregation round is open' }, bankId);
          let rej: SecAggRejection | null;
          if (msg.type === 'secaggAdvertiseKeys') rej = secagg.receiveAdvertise(bankId, msg);
          else if (msg.type === 'secaggShareKeys') rej = secagg.receiveShares(bankId, msg);
          else if (msg.type === 'secaggUnmaskResponse') rej = secagg.receiveUnmask(bankId, msg);
          else {
            rej = secagg.bankAborted(bankId, msg);
            if (!rej) metrics.secaggAbort(msg.code);
          }
          if (rej) return reject(socket, rej, bankId);
          return;
        }
        if (msg.type === 'clientUpdate') {
          if (!msg.tensors.length) return reject(socket, { code: 'MISSING_FIELD', message: 'this round expects a plain update (clientUpdate.tensors)' }, bankId);
          if (msg.pairCounts && !takePairCounts(socket, bankId, msg.pairCounts, msg.sampleCount)) return;
          // Stamped before acceptUpdate: the update that completes a round aggregates inside that call.
          const previousUpdateAt = lastUpdateAt;
          lastUpdateAt = Date.now();
          const had = trainedBanks.has(bankId);
          trainedBanks.add(bankId);
          const rej = rounds.acceptUpdate(
            bankId,
            msg.roundId,
            msg.modelVersion,
            { bankId, sampleCount: msg.sampleCount, update: msg.tensors, metrics: msg.metrics },
            msg.epsilonSpent,
          );
          if (rej) {
            lastUpdateAt = previousUpdateAt;
            if (!had) trainedBanks.delete(bankId);
            return reject(socket, rej, bankId);
          }
          opts.persistence.recordSpend(bankId, msg.roundId, msg.epsilonSpent, msg.delta);
          return;
        }
        if (msg.type === 'calibrationCounts') {
          const c = calibration;
          if (!c) return reject(socket, { code: 'UNEXPECTED_MESSAGE', message: 'no label calibration is open' }, bankId);
          if (msg.modelVersion !== c.modelVersion) return reject(socket, { code: 'MODEL_VERSION_MISMATCH', message: `calibration counts for model version ${msg.modelVersion}, the open request is for ${c.modelVersion}` }, bankId);
          if (!c.expected.has(bankId)) return reject(socket, { code: 'NOT_PARTICIPANT', message: 'this bank was not asked for calibration counts' }, bankId);
          if (c.counts.has(bankId)) return reject(socket, { code: 'DUPLICATE_UPDATE', message: 'this bank already sent its calibration counts' }, bankId);
          if (msg.rows.length !== c.bins) return reject(socket, { code: 'SHAPE_MISMATCH', message: `calibration counts have ${msg.rows.length} bins, the request has ${c.bins}` }, bankId);
          c.counts.set(bankId, { rows: msg.rows, positives: msg.positives, noiseStd: msg.noiseStd, epsilonSpent: msg.epsilonSpent });
          opts.persistence.recordCalibrationSpend(bankId, c.round, msg.epsilonSpent, msg.delta);
          log.info('label_calibration_received', { bank: bankId, epsilon: msg.epsilon, epsilonSpent: msg.epsilonSpent, noiseStd: Number(msg.noiseStd.toFixed(2)) });
          if ([...c.expected].every((b) => c.counts.has(b))) c.complete();
          return;
        }
        if (msg.type === 'summary') {
          const problem = checkSummaryColumns(msg.counts, opts.summaryColumns);
          if (problem) return reject(socket, { code: 'INVALID_FIELD', message: problem }, bankId);
          opts.persistence.recordSummarySpend(bankId, msg.epsilon, msg.delta);
          if (summaries.weights) {
            log.info('summary_after_freeze', { bank: bankId, note: 'category weights already fixed; kept for the record only' });
          } else {
            summaries.add(bankId, msg.counts, msg.noiseStd);
            log.info('summary_received', { bank: bankId, epsilon: msg.epsilon, noiseStd: msg.counts.map((c) => Number((c.noiseStd ?? msg.noiseStd).toFixed(3))) });
          }
          rounds.bankConnected(bankId);
          return;
        }
        return reject(socket, { code: 'UNEXPECTED_MESSAGE', message: `a bank may not send '${msg.type}'` }, bankId);
      } catch (err) {
        // A bug on our side, never the client's fault: answer, log, and keep serving.
        log.error('frame_handler_failed', { bank: bankId, error: err instanceof Error ? err.stack ?? err.message : String(err) });
        try {
          socket.emit('frame', wire.error('INTERNAL', 'the coordinator could not process this message', rounds.currentRoundId));
        } catch {
          /* the socket may already be gone */
        }
      }
    });

    socket.on('disconnect', (reason) => {
      if (bankId && sockets.get(bankId) === socket) {
        sockets.delete(bankId);
        // A bank gone during calibration will not answer: stop waiting for it.
        const c = calibration;
        if (c && !c.counts.has(bankId) && c.expected.delete(bankId) && [...c.expected].every((b) => c.counts.has(b))) c.complete();
        secagg?.bankGone(bankId);
        rounds.bankDisconnected(bankId, `disconnected (${reason})`);
        log.info('bank_disconnected', { bank: bankId, reason, connected: sockets.size });
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, opts.host, () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  log.info('coordinator_listening', { url, minClients: opts.policy.minClients, maxRounds: opts.policy.maxRounds });

  return {
    url,
    port,
    rounds,
    metrics,
    finished,
    // Idempotent: --exit-when-finished closes on its own, and a signal may then close again.
    close: () =>
      (closed ??= (async () => {
        closing = true;
        calibration?.complete();
        rounds.stop();
        secagg?.close();
        io.disconnectSockets(true);
        await new Promise<void>((r) => io.close(() => r()));
        await closeHttp(http);
        opts.persistence.close();
      })()),
  };
}

function closeHttp(http: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    if (!http.listening) return resolve();
    http.close(() => resolve());
    http.closeAllConnections?.();
  });
}

interface HttpDeps {
  rounds: RoundManager;
  metrics: Metrics;
  persistence: Persistence;
  connected: () => string[];
  sampling?: SamplingService;
  secureAggregation: () => Record<string, unknown>;
  /** The pair counts, when planned: which banks' tables are held, and the targets of the open round. */
  pairCounts: () => Record<string, unknown> | undefined;
}

/**
 * Health, status, Prometheus metrics, and the signed model/sampling endpoints (sampling-service.ts)
 * on the coordinator's own port (socket.io takes /socket.io/).
 */
function serveHttp(req: IncomingMessage, res: ServerResponse, deps: HttpDeps): void {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET') {
    res.writeHead(405).end();
    return;
  }
  if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
  } else if (path === '/status') {
    const pairs = deps.pairCounts();
    const body = { ...deps.persistence.status(), round: deps.rounds.snapshot(), banksOnline: deps.connected(), secureAggregation: deps.secureAggregation(), ...(pairs ? { pairCounts: pairs } : {}) };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2));
  } else if (path === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(deps.metrics.prometheus(deps.connected().length, deps.rounds.snapshot()));
  } else if (deps.sampling?.handle(req, res)) {
    return;
  } else {
    res.writeHead(404).end();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkSummaryColumns(counts: ColumnCounts[], expected: { column: string; dim: number }[]): string | null {
  if (counts.length !== expected.length) return `summary has ${counts.length} columns, the consortium model summarises ${expected.length}`;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const c = counts[i]!;
    if (c.column !== e.column) return `summary column ${i} is '${c.column}', expected '${e.column}'`;
    if (c.values.length !== e.dim) return `summary column '${e.column}' has ${c.values.length} categories, expected ${e.dim}`;
  }
  return null;
}
