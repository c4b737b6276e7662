// Assembles a bank agent from files on the bank's machine: schema, identity, CSV. The CSV is read
// and encoded here, once; only the encoded matrix is handed to the trainer, in memory.
import { releaseCalibrationCounts } from './dp-calibration';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, loadIdentity, saveIdentity, type Identity, type PairTable } from '../protocol';
import { createLogger, type Logger } from '../shared/log/logger';
import { selectBackend } from '../shared/tensor/backend';
import { loadBankData } from './bank-data';
import { keyListVerification, startAgent, type RunningAgent } from './agent';
import { readConsortiumDirectory } from './secagg-client';
import { readCoordinatorKey } from './coordinator-key';
import { GanLocalTrainer, parseConsortiumModelConfig, type LocalDpOptions } from './local-trainer';
import { readCachedSummary, releaseNoisyCounts } from './dp-summary';
import { writeReleaseCache } from './release-cache';
import { writeFileAtomic } from '../shared/fs/atomic-write';
import { BankEncoder } from './bank-encoder';
import { addClientLevelNoise } from './update';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { PrivacyLedger } from './ledger';
import { releaseRowCount } from './dp-row-count';
import { releasePairCounts } from './dp-pair-counts';

export interface RunAgentOptions {
  coordinatorUrl: string;
  bankId: string;
  dataPath: string;
  schemaPath: string;
  keyPath?: string;
  coordinatorKey?: string;
  stateDir: string;
  exitWhenFinished: boolean;
  maxRowProblems: number;
  /** The bank's total privacy budget (ε at δ); the ledger refuses any release beyond it. */
  epsilonMax: number;
  /** Part of the budget spent on the DP category-count summary. */
  summaryEpsilon: number;
  /**
   * Share of the summary's privacy loss spent on the schema's target column (its class counts set
   * the sampler's quotas and the rare class's weights); default DEFAULT_SUMMARY_TARGET_SHARE. See
   * shared/privacy/summary-noise.ts.
   */
  summaryTargetShare?: number;
  /**
   * false (`--no-label-calibration`): this bank neither plans nor answers the coordinator's label
   * calibration request after the last round (one release fewer; the consortium's labels are then
   * calibrated from the other banks' counts, or not at all). Default true.
   */
  labelCalibration?: boolean;
  /**
   * false (`--no-pair-counts`): this bank does not release the two-way counts the consortium's
   * model configuration plans (one release fewer; the generator's pair targets then come from the
   * other banks' counts, or there are none). Default true.
   */
  pairCounts?: boolean;
  /** Budget δ; default min(1e-5, 1/(10·n)) with n the released row count. */
  delta?: number;
  /** Gaussian noise sd of the released row count (client-node/dp-row-count.ts); default ROW_COUNT_NOISE_SD. */
  rowCountNoise?: number;
  /**
   * DP-SGD on the discriminator, charged to the ledger per round. On when noiseMultiplier or
   * targetEpsilon is set (or the coordinator's plan enables DP); otherwise the model has no finite
   * guarantee and ε = ∞ is reported.
   */
  dp?: Omit<LocalDpOptions, 'ledger' | 'budget'>;
  /**
   * Client-level DP on each update (DP-FedAvg, McMahan et al. 2018): Gaussian noise z·S/√banks on the
   * clipped update, charged per round. banks = 1 (default) makes each update private on its own;
   * banks = n splits the noise so only the securely aggregated sum carries all of it.
   */
  clientDp?: { noiseMultiplier: number; banks: number };
  /**
   * The consortium directory file (`--consortium-directory`): the operator's allow-list JSON (the
   * coordinator's --allow-list file, `fedsynth keygen` public identities). Secure-aggregation key
   * lists are verified against it.
   */
  consortiumDirectoryPath?: string;
  /** `--unverified-key-lists`: explicit opt-out of key-list verification when there is no directory. */
  unverifiedKeyLists?: boolean;
  log?: Logger;
}

/** `<state-dir>/agent-status.json`: the agent's security-relevant state, for reviewers and the container health check. */
export const AGENT_STATUS_FILE = 'agent-status.json';
/** `<state-dir>/dp-row-count.json`: the released row count, reused on restart without a new charge. */
export const ROW_COUNT_CACHE_FILE = 'dp-row-count.json';
/** `<state-dir>/dp-pair-counts.json`: the released pair counts, reused on restart without a new charge. */
export const PAIR_COUNTS_CACHE_FILE = 'dp-pair-counts.json';

export async function runAgent(opts: RunAgentOptions): Promise<void> {
  const log = opts.log ?? createLogger({ component: `agent:${opts.bankId}` });
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const identity = loadOrCreateIdentity(opts.keyPath ?? join(opts.stateDir, 'identity.json'), opts.bankId, log);
  const pinnedPath = join(opts.stateDir, 'coordinator-key.txt');
  const pinned = resolveCoordinatorKey(opts.coordinatorKey, pinnedPath);
  const directory = opts.consortiumDirectoryPath ? readConsortiumDirectory(opts.consortiumDirectoryPath) : undefined;
  const verification = keyListVerification({ consortiumDirectory: directory, unverifiedKeyLists: opts.unverifiedKeyLists });
  const status = {
    bankId: opts.bankId,
    secureAggregation: {
      keyListVerification: verification,
      ...(directory ? { directory: opts.consortiumDirectoryPath, banks: [...directory.keys()].sort() } : {}),
      note:
        verification === 'verified'
          ? 'every key list is checked against the consortium directory (signed adverts)'
          : verification === 'unverified'
            ? 'NO consortium directory and --unverified-key-lists: key lists are NOT verified; a malicious coordinator could substitute keys'
            : 'NO consortium directory: this bank refuses secure-aggregation rounds (KEY_LIST_NO_DIRECTORY); pass --consortium-directory',
      lastRefusal: null as null | { roundId: number; code: string; message: string; at: string },
    },
    /** The bank's budget, beside the ledger, so `fedsynth privacy ledger` reports ε at this bank's δ. */
    privacyBudget: null as null | { epsilonMax: number; delta: number; ledger: string },
    updatedAt: new Date().toISOString(),
  };
  const statusPath = join(opts.stateDir, AGENT_STATUS_FILE);
  const writeStatus = (): void => {
    status.updatedAt = new Date().toISOString();
    try {
      writeFileAtomic(statusPath, JSON.stringify(status, null, 2) + '\n');
    } catch (err) {
      log.warn('status_write_failed', { path: statusPath, error: (err as Error).message });
    }
  };
  writeStatus();

  const backend = await selectBackend({ log: (line: string) => log.info('backend', { detail: line }) });
  log.info('backend_selected', { backend: backend.name });

  const data = await loadBankData(opts.dataPath, opts.schemaPath, { maxProblems: opts.maxRowProblems, log });
  log.info('data_ready', { rows: data.rows.length, rejectedRows: data.rejectedRows });

  const ledger = PrivacyLedger.open(join(opts.stateDir, 'privacy-ledger.jsonl'));
  // The first release: the row count every size-dependent figure (FedAvg weight, q, σ, default δ) is computed from.
  const { released: rowCount, budget, cached } = releaseRowCount(data.rows.length, {
    ledger,
    epsilonMax: opts.epsilonMax,
    ...(opts.delta !== undefined ? { delta: opts.delta } : {}),
    ...(opts.rowCountNoise !== undefined ? { noiseSd: opts.rowCountNoise } : {}),
    cachePath: join(opts.stateDir, ROW_COUNT_CACHE_FILE),
  });
  log.info(cached ? 'row_count_reused' : 'row_count_charged', { released: rowCount.rows, noiseSd: rowCount.noiseSd, epsilon: Number(rowCount.epsilon.toFixed(4)) });
  log.info('privacy_budget', { epsilonMax: budget.epsilonMax, delta: budget.delta, spent: Number(ledger.spent(budget.delta).toFixed(4)) });
  status.privacyBudget = { epsilonMax: budget.epsilonMax, delta: budget.delta, ledger: 'privacy-ledger.jsonl' };
  writeStatus();
  const encoder = new BankEncoder(data.schema, data.rows, rowCount.rows);
  const summaryCache = join(opts.stateDir, 'dp-summary.json');

  const agent: RunningAgent = startAgent({
    coordinatorUrl: opts.coordinatorUrl,
    bankId: opts.bankId,
    schemaHash: data.schemaHash,
    identity,
    ...(pinned ? { coordinatorKey: pinned.key, coordinatorKeySource: pinned.source } : {}),
    onCoordinatorKeyPinned: (key, fingerprint) => {
      writeFileAtomic(pinnedPath, Buffer.from(key).toString('base64') + '\n', { mode: 0o600 });
      log.warn('coordinator_key_stored', { path: pinnedPath, fingerprint, note: 'compare the fingerprint with the operator out of band' });
    },
    createTrainer: async (json) => {
      const parsed = parseConsortiumModelConfig(json);
      // Opted out: the release is neither planned into σ nor answered.
      const { labelCalibration: _planned, ...withoutCalibration } = parsed;
      const cfg = opts.labelCalibration === false ? withoutCalibration : parsed;
      const dim = encoder.configure(cfg);
      return new GanLocalTrainer(cfg, dim, { ...opts.dp, ledger, budget });
    },
    dataset: { prepare: (transformerJson) => encoder.prepare(transformerJson) },
    // Released once: a re-sent copy of the same noisy counts is post-processing and costs nothing more.
    summarize: (requested, condSpans) => {
      const cached = readCachedSummary(summaryCache, requested, ledger);
      if (cached) return cached;
      const raw = encoder.rawSummary(requested, condSpans);
      const target = data.schema.target;
      const released = releaseNoisyCounts(raw, requested, {
        epsilon: opts.summaryEpsilon,
        delta: budget.delta,
        ledger,
        budget,
        ...(target !== undefined ? { target, ...(opts.summaryTargetShare !== undefined ? { targetShare: opts.summaryTargetShare } : {}) } : {}),
      });
      writeReleaseCache(summaryCache, released);
      return released;
    },
    // Label calibration after the last round: charged, then noised, then sent (at most once per run).
    ...(opts.labelCalibration === false
      ? {}
      : {
          releaseCalibration: (exact: { rows: number[]; positives: number[] }, noiseMultiplier: number) => {
            const released = releaseCalibrationCounts(exact, { noiseMultiplier, ledger, budget });
            log.info('label_calibration_charged', { noiseMultiplier, epsilon: Number(released.epsilon.toFixed(4)), epsilonSpent: Number(ledger.spent(budget.delta).toFixed(4)) });
            return released;
          },
        }),
    ...(opts.pairCounts === false
      ? {}
      : {
          releasePairCounts: (exact: PairTable[], noiseMultiplier: number) => {
            return releasePairCounts(exact, { noiseMultiplier, ledger, budget, cachePath: join(opts.stateDir, PAIR_COUNTS_CACHE_FILE) });
          },
        }),
    ...(opts.clientDp
      ? {
          privatizeUpdate: (update: { name: string; shape: number[]; data: Float32Array }[], info: { roundId: number; clipNorm: number }) => {
            const { noiseMultiplier, banks } = opts.clientDp!;
            // Charged before the noise is drawn and anything leaves (BudgetExceededError stops the send).
            ledger.charge({ kind: 'client-level', params: { q: 1, sigma: noiseMultiplier, steps: 1 }, round: info.roundId, note: `update noise share over ${banks} bank(s)` }, budget);
            const sigma = addClientLevelNoise(update, info.clipNorm, noiseMultiplier, banks, secureGaussian);
            log.info('client_level_noise', { round: info.roundId, sigma: Number(sigma.toPrecision(4)), noiseMultiplier, banks });
          },
        }
      : {}),
    chargeDistributedDp: ({ roundId, mechanism }) => {
      const floor = opts.clientDp?.noiseMultiplier;
      if (floor !== undefined && mechanism.noiseMultiplier < floor) {
        throw new Error(
          `round ${roundId}: the coordinator's distributed DP noise (z = ${mechanism.noiseMultiplier.toFixed(3)} of the guaranteed banks) is below this bank's --client-dp-noise ${floor}; the update is not sent`,
        );
      }
      // Charged before the noise is drawn and anything leaves (BudgetExceededError stops the send).
      ledger.charge(
        { kind: 'distributed-skellam', params: { l1Sensitivity: mechanism.l1Sensitivity, l2Sensitivity: mechanism.l2Sensitivity, mu: mechanism.mu }, round: roundId, note: `Skellam noise in the ring, z = ${mechanism.noiseMultiplier.toFixed(3)}` },
        budget,
      );
      log.info('distributed_dp_charged', { round: roundId, noiseMultiplier: Number(mechanism.noiseMultiplier.toFixed(4)), mu: Number(mechanism.mu.toPrecision(6)), epsilonSpent: Number(ledger.spent(budget.delta).toFixed(4)) });
    },
    epsilonSpent: () => ({ epsilon: ledger.spent(budget.delta), delta: budget.delta }),
    ...(directory ? { consortiumDirectory: directory } : {}),
    unverifiedKeyLists: Boolean(opts.unverifiedKeyLists),
    onSecAggRefused: (r) => {
      status.secureAggregation.lastRefusal = { ...r, at: new Date().toISOString() };
      writeStatus();
    },
    log,
    exitWhenFinished: opts.exitWhenFinished,
  });
  // Every signal is handled: a second SIGTERM while a training chunk finishes must not fall through
  // to the default exit (143) halfway through writing the ledger or the status.
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return void log.warn('already_stopping', { signal });
    stopping = true;
    log.info('stopping', { signal });
    agent.stop();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Liveness for container health checks: <state-dir>/heartbeat rewritten every 15 s while running.
  const heartbeat = (await import('./heartbeat')).startHeartbeat(opts.stateDir, { log });
  try {
    await agent.done;
  } finally {
    heartbeat.stop();
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  log.info('agent_finished', { roundsTrained: agent.roundsTrained });
}

function loadOrCreateIdentity(path: string, bankId: string, log: Logger): Identity {
  if (existsSync(path)) {
    const id = loadIdentity(path);
    if (id.id !== undefined && id.id !== bankId) throw new Error(`key file ${path} belongs to '${id.id}', not '${bankId}'`);
    return id;
  }
  const id = generateIdentity(bankId);
  saveIdentity(path, id);
  log.warn('identity_created', { path, note: 'give the public identity (`fedsynth keygen` prints it) to the consortium operator' });
  return id;
}

/** The key to pin: --coordinator-key (identity JSON, base64 file or inline), else the key pinned on first use. */
function resolveCoordinatorKey(flag: string | undefined, pinnedPath: string): { key: Uint8Array; source: string } | undefined {
  if (flag !== undefined) return { key: readCoordinatorKey(flag), source: `--coordinator-key ${flag}` };
  if (!existsSync(pinnedPath)) return undefined;
  return { key: readCoordinatorKey(pinnedPath, 'the pinned coordinator key'), source: `pinned on first use in ${pinnedPath}` };
}
