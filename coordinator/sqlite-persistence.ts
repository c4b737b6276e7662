// Persistence backed by the SQLite state store and checkpoint files in the state directory.
// Order on commit: checkpoint file durably written, then one DB transaction, then `latest.ckpt`
// (a convenience copy for `fedsynth sample`). A crash anywhere leaves either the previous or the
// new round committed; recover() cleans up whatever a crash left behind.
import { join } from 'node:path';
import type { ColumnCounts } from '../protocol';
import type { Logger } from '../shared/log/logger';
import type { PairRelease, Persistence, RestoredState } from './persistence';
import type { CommittedRound } from './rounds';
import type { ClientFailure, Tensors } from './strategy/types';
import { encodeCheckpoint, readCheckpoint, writeCheckpoint, type Checkpoint } from './store/checkpoint';
import { writeFileAtomic } from '../shared/fs/atomic-write';
import { StateStore } from './store/state-store';
import type { SamplableModel } from '../shared/sampling/sampler';

export interface PersistenceOptions {
  stateDir: string;
  modelConfig: unknown;
  transformer: unknown;
  schemaHash: string;
  log: Logger;
}

export function openPersistence(opts: PersistenceOptions): Persistence & { store: StateStore; latestPath: string } {
  const store = new StateStore(opts.stateDir);
  const latestPath = join(opts.stateDir, 'latest.ckpt');
  // Seeded from the database so that a restarted coordinator's model cards still name every bank
  // that contributed before the restart, with its last reported ε.
  const reported = store.epsilonByBank();
  const epsilonByBank = new Map<string, number | null>(store.contributors().map((c) => [c.bankId, reported[c.bankId] ?? null]));
  let categoryWeights = store.getSetting<ColumnCounts[]>('categoryWeights');
  // The fitted transformer (when the consortium uses one) replaces the schema-only layout in every
  // checkpoint written after the first round starts.
  let transformer: unknown = store.getSetting<unknown>('transformer') ?? opts.transformer;

  const checkpoint = (version: number, round: number, weights: Tensors, card: Record<string, unknown>): Checkpoint => ({
    version,
    round,
    createdAt: new Date().toISOString(),
    modelConfig: opts.modelConfig,
    transformer,
    tensors: weights,
    meta: { schemaHash: opts.schemaHash, categoryWeights: categoryWeights ?? null, ...card },
  });
  const publishLatest = (c: Checkpoint): void => writeFileAtomic(latestPath, encodeCheckpoint(c));

  return {
    store,
    latestPath,
    load(): RestoredState | null {
      const r = store.recover();
      if (r.removedTemp || r.quarantined) opts.log.warn('recovered_after_crash', { removedTempFiles: r.removedTemp, quarantinedCheckpoints: r.quarantined });
      if (!r.latest) return null;
      const ckpt = readCheckpoint(r.latest.path, { expectedSha256: r.latest.sha256 });
      publishLatest(ckpt);
      const skipped = store.getSetting<string>('labelCalibrationSkipped');
      return { weights: ckpt.tensors, modelVersion: r.latest.version, nextRoundId: r.nextRoundId, roundsCommitted: r.roundsCommitted, categoryWeights, ...(store.getSetting<unknown>('transformer') ? { transformer } : {}), ...(skipped !== undefined ? { labelCalibrationSkipped: skipped } : {}) };
    },
    saveInitial(weights: Tensors): void {
      const c = checkpoint(0, 0, weights, { rounds: 0, banks: [], epsilonByBank: {} });
      const info = writeCheckpoint(store.checkpointDir, c);
      store.recordInitialModel(info);
      publishLatest(c);
    },
    async commit(round: CommittedRound): Promise<void> {
      for (const p of round.participants) epsilonByBank.set(p.bankId, Number.isFinite(p.epsilonSpent) ? p.epsilonSpent : null);
      const c = checkpoint(round.modelVersion, round.roundId, round.weights, {
        rounds: round.roundId,
        // Every bank whose updates are in this model (all committed rounds so far), and this round's.
        banks: [...epsilonByBank.keys()].sort(),
        roundBanks: round.participants.map((p) => p.bankId),
        // The model card: ε per bank (null = trained without DP-SGD, no finite guarantee).
        epsilonByBank: Object.fromEntries(epsilonByBank),
        // β with which this round's generator was averaged into the previous published one (0 = plain FedAvg).
        generatorEma: round.published?.generatorEma ?? 0,
      });
      const info = writeCheckpoint(store.checkpointDir, c);
      const attempt = store.failedAttempts(round.roundId) + 1;
      store.commitRound(round.roundId, attempt, round.modelVersion, info, [
        ...round.participants.map((p) => ({ bankId: p.bankId, status: 'updated' as const, sampleCount: p.sampleCount })),
        ...round.failures.map((f) => ({ bankId: f.bankId, status: f.reason.startsWith('straggler') ? ('straggler' as const) : ('dropped' as const), reason: f.reason })),
      ]);
      publishLatest(c);
    },
    recordFailure(roundId: number, reason: string, failures: ClientFailure[]): void {
      store.failRound(roundId, store.failedAttempts(roundId) + 1, reason, failures.map((f) => ({ bankId: f.bankId, status: 'dropped' as const, reason: f.reason })));
    },
    bankSeen(bankId, sign, box): void {
      store.upsertBank(bankId, sign, box);
    },
    recordSpend(bankId, roundId, epsilon, delta): void {
      store.recordSpend(bankId, roundId, 'training', epsilon, delta);
      store.touchBank(bankId);
    },
    recordSummarySpend(bankId, epsilon, delta): void {
      store.recordSpend(bankId, 0, 'summary', epsilon, delta);
    },
    saveCategoryWeights(weights: ColumnCounts[], fitted?: unknown, decided: { labelCalibrationSkipped?: string } = {}): void {
      // One transaction: a restart finds the weights with the transformer and the decisions made from them, or none of them.
      store.setSettings({
        categoryWeights: weights,
        ...(fitted !== undefined ? { transformer: fitted } : {}),
        ...(decided.labelCalibrationSkipped !== undefined ? { labelCalibrationSkipped: decided.labelCalibrationSkipped } : {}),
      });
      categoryWeights = weights;
      if (fitted !== undefined) transformer = fitted;
    },
    savePairCounts(byBank): void {
      store.setSetting('pairCounts', byBank);
    },
    pairCounts() {
      return store.getSetting<Record<string, PairRelease>>('pairCounts') ?? {};
    },
    recordCalibrationSpend(bankId, roundId, epsilon, delta): void {
      // Under the last round's id: the model cards of that round's version and later show it.
      store.recordSpend(bankId, roundId, 'calibration', epsilon, delta);
    },
    latestModel() {
      const row = store.latestModel();
      if (!row) return null;
      const c = readCheckpoint(row.path, { expectedSha256: row.sha256 });
      return { version: row.version, round: row.round, model: { modelConfig: c.modelConfig, transformer: c.transformer, tensors: c.tensors, meta: c.meta as SamplableModel['meta'] } };
    },
    commitLabelCalibration(version, calibration, info): number {
      const row = store.modelVersion(version);
      if (!row) throw new Error(`no model version ${version} to calibrate`);
      const src = readCheckpoint(row.path, { expectedSha256: row.sha256 });
      const next = (store.latestModel()?.version ?? version) + 1;
      // The card's ε per bank now includes the banks' calibration releases (their reported totals).
      // A bank that trained without DP-SGD keeps null (no finite guarantee, whatever it reports).
      const epsilonByBank: Record<string, number | null> = { ...((src.meta.epsilonByBank as Record<string, number | null> | undefined) ?? {}) };
      for (const [bank, e] of Object.entries((info.epsilonByBank as Record<string, number> | undefined) ?? {})) if (epsilonByBank[bank] !== null) epsilonByBank[bank] = e;
      const c: Checkpoint = { ...src, version: next, createdAt: new Date().toISOString(), meta: { ...src.meta, epsilonByBank, labelCalibration: calibration, labelCalibrationInfo: { ofVersion: version, ...info } } };
      const written = writeCheckpoint(store.checkpointDir, c);
      store.recordModelVersion(next, row.round, written);
      publishLatest(c);
      return next;
    },
    recordRejection(who, code, message): void {
      store.recordRejection(who, code, message);
    },
    status: () => store.status(),
    close: () => store.close(),
  };
}

