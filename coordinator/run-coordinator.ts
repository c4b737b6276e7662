// Assembles a coordinator from its configuration: the consortium schema fixes the transformer and
// so the model layout; state and checkpoints live in the state directory; the round policy and
// training plan come from the config. Logic lives in the modules it wires.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, keyFingerprint, loadIdentity, parsePublicIdentity, publicIdentity, saveIdentity, type Identity } from '../protocol';
import { createLogger, type Logger } from '../shared/log/logger';
import { createModel, type ModelConfig } from '../shared/model';
import { consortiumModelConfig } from './model-config';
import { selectBackend } from '../shared/tensor/backend';
import { schemaHash, validateSchema } from '../shared/data/schema';
import { SimpleTransformer } from '../shared/transformer/simple';
import { softmaxSpanPairs } from '../shared/transformer/pair-counts';
import { GmmTransformer, pooledCategoryWeights, summaryColumns as gmmSummaryColumns, type GmmTransformerState } from '../shared/transformer/gmm';
import { FedAvg } from './strategy/fedavg';
import { startCoordinator, type RunningCoordinator } from './server';
import { openPersistence } from './sqlite-persistence';
import { modelSourceFromStore } from './sampling-service';
import type { RoundPolicy, TrainingPlan } from './rounds';
import type { DpPlan } from './wire';
import { checkSecureAggregationPolicy, type SecureAggregationSettings } from './secagg-round';
import type { DecodedMessage } from '../protocol';

export interface CoordinatorSettings {
  host: string;
  port: number;
  schemaPath: string;
  stateDir: string;
  keyPath?: string;
  allowListPath?: string;
  model: Partial<ModelConfig>;
  policy: RoundPolicy;
  plan: TrainingPlan;
  dp: DpPlan;
  maxFrameBytes: number;
  /** Most rows one GET /sample may ask for (default 100,000). */
  maxSampleRows?: number;
  /**
   * 'gmm' (default): CTGAN's mode-specific normalisation, fitted from the banks' DP-noised
   * histograms when the first round starts. 'simple': min-max scaling from the schema alone.
   */
  transformer?: 'gmm' | 'simple';
  /**
   * Explicit opt-out of secure aggregation (`--insecure-aggregation`): banks send plaintext updates.
   * Without it secure aggregation is on, and rounds need ≥ 3 banks (policy.minClients ≥ 3).
   */
  insecureAggregation?: boolean;
  /** Secure-aggregation step timeout and FedAvg weight cap (secagg-round.ts defaults). */
  secureAggregation?: SecureAggregationSettings;
  /** β of the published generator's moving average over rounds (server.ts generatorEma); 0/absent = off. */
  generatorEma?: number;
  /** Noise multiplier of the banks' label-calibration counts after the last round (server.ts labelCalibration); absent = off. */
  labelCalibrationNoise?: number;
  /**
   * The banks' two-way counts of their encoded rows (client-node/dp-pair-counts.ts) at this noise
   * multiplier, merged into the generator's pair targets (weight `weight` in its loss). Absent: none.
   */
  pairCounts?: { noiseMultiplier: number; weight: number };
  /** Fit the gmm transformer with point masses (GmmTransformer FitOptions.pointMasses; --point-masses). */
  pointMasses?: boolean;
  /** How long the coordinator waits for the banks' calibration counts (default 120 s; tests shorten it). */
  labelCalibrationTimeoutMs?: number;
}

export async function runCoordinator(
  s: CoordinatorSettings,
  opts: { exitWhenFinished: boolean; log?: Logger; onFrame?: (bankId: string | undefined, msg: DecodedMessage) => void },
): Promise<RunningCoordinator> {
  // Refuse a config that would run secure aggregation with < 3 banks before touching any state.
  checkSecureAggregationPolicy({ secureAggregation: !s.insecureAggregation, minClients: s.policy.minClients });
  const log = opts.log ?? createLogger({ component: 'coordinator' });
  mkdirSync(s.stateDir, { recursive: true, mode: 0o700 });
  const schema = validateSchema(JSON.parse(readFileSync(s.schemaPath, 'utf8')));
  const hash = schemaHash(schema);
  const kind = s.transformer ?? 'gmm';
  // The layout (and so the model) follows from the schema; a gmm transformer's parameters are fitted later.
  const transformer = kind === 'gmm' ? GmmTransformer.layout(schema) : SimpleTransformer.fromSchema(schema);
  const modelConfig = consortiumModelConfig(schema, s.model);
  const backend = await selectBackend({ log: (line: string) => log.info('backend', { detail: line }) });
  log.info('backend_selected', { backend: backend.name });

  // The initial weights and the conditional columns come from one throwaway model instance.
  const model = createModel(modelConfig, transformer.spans);
  const initial = model.getWeights();
  const summaryColumns = kind === 'gmm' ? gmmSummaryColumns(schema).map(({ column, dim }) => ({ column, dim })) : model.condSpans.map((c) => ({ column: c.column, dim: c.dim }));
  model.dispose();

  const identity = loadOrCreateCoordinatorIdentity(s.keyPath ?? join(s.stateDir, 'coordinator-identity.json'), log);
  // The public half, for banks' --coordinator-key and `fedsynth fetch-model --coordinator-key`.
  writeFileSync(join(s.stateDir, 'coordinator-public.json'), JSON.stringify(publicIdentity({ ...identity, id: 'coordinator' }), null, 2) + '\n');
  const allowList = s.allowListPath ? readAllowList(s.allowListPath) : undefined;
  // Banks read from it what to summarise (`summary`) and which transformer encodes their rows.
  // `labelCalibration`: the release each bank plans into its DP-SGD noise (only with a classifier C).
  const labelCalibration = s.labelCalibrationNoise && modelConfig.classifierColumn ? { noiseMultiplier: s.labelCalibrationNoise } : undefined;
  // `pairCounts`: the release each bank makes before its first round trains (charged before its DP-SGD noise is calibrated) and sends with its updates.
  const modelConfigJson = JSON.stringify({ model: modelConfig, spans: transformer.spans, transformer: kind, summary: summaryColumns, ...(labelCalibration ? { labelCalibration } : {}), ...(s.pairCounts ? { pairCounts: s.pairCounts } : {}) });
  const pairs = s.pairCounts ? softmaxSpanPairs(transformer.spans, modelConfig.classifierColumn ? [modelConfig.classifierColumn] : []) : [];
  const persistence = openPersistence({
    stateDir: s.stateDir,
    modelConfig,
    transformer: transformer.toJSON(),
    schemaHash: hash,
    log: log.child('store'),
  });

  const running = await startCoordinator({
    ...(s.generatorEma ? { generatorEma: s.generatorEma } : {}),
    ...(pairs.length > 0 ? { pairCounts: { pairs } } : {}),
    ...(labelCalibration ? { labelCalibration: { ...labelCalibration, column: modelConfig.classifierColumn!, ...(s.labelCalibrationTimeoutMs !== undefined ? { timeoutMs: s.labelCalibrationTimeoutMs } : {}) } } : {}),
    host: s.host,
    port: s.port,
    schemaHash: hash,
    modelConfigJson,
    policy: s.policy,
    plan: s.plan,
    dp: s.dp,
    strategy: new FedAvg(),
    persistence,
    initialWeights: () => initial,
    allowList,
    identity,
    summaryColumns,
    ...(kind === 'gmm'
      ? {
          fitTransformer: (merged: { column: string; values: number[] }[], noiseStd: number[]) => {
            const t = GmmTransformer.fit(schema, merged, { noiseStd, ...(s.pointMasses ? { pointMasses: true } : {}) });
            log.info('transformer_fitted', { kind: 'gmm', noiseStd: Number(Math.max(0, ...noiseStd).toFixed(2)), modes: t.toJSON().columns.filter((c) => c.kind === 'numeric').map((c) => `${c.column}:${(c as { mixture: { means: number[] } }).mixture.means.length}`) });
            return t.toJSON();
          },
          categoryWeightsFor: (fitted: unknown, raw: { column: string; values: number[] }[]) => pooledCategoryWeights(fitted as GmmTransformerState, raw),
        }
      : {}),
    maxFrameBytes: s.maxFrameBytes,
    models: modelSourceFromStore(persistence.store),
    maxSampleRows: s.maxSampleRows,
    ...(s.insecureAggregation ? {} : { secureAggregation: s.secureAggregation ?? {} }),
    onFrame: opts.onFrame,
    log,
  });
  log.info('aggregation_mode', { secureAggregation: !s.insecureAggregation, ...(s.insecureAggregation ? { note: 'explicit opt-out: the coordinator sees each bank\'s plaintext update' } : {}) });
  log.info('coordinator_identity', { fingerprint: keyFingerprint(identity.sign.publicKey), signPublicKey: Buffer.from(identity.sign.publicKey).toString('base64') });
  if (opts.exitWhenFinished) {
    void running.finished.then(async () => {
      // Let the 'finished' notices reach the banks before closing their sockets.
      await new Promise((r) => setTimeout(r, 500));
      await running.close();
    });
  }
  return running;
}

function loadOrCreateCoordinatorIdentity(path: string, log: Logger): Identity {
  if (existsSync(path)) return loadIdentity(path);
  const id = generateIdentity('coordinator');
  saveIdentity(path, id);
  log.warn('coordinator_identity_created', { path, fingerprint: keyFingerprint(id.sign.publicKey) });
  return id;
}

/** The allow-list: a JSON array of public identities (`fedsynth keygen` output), each with its bank id. */
export function readAllowList(path: string): Map<string, { signPublicKey: Uint8Array; boxPublicKey: Uint8Array }> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`allow-list ${path} is not readable JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new Error(`allow-list ${path} must be a JSON array of public identities`);
  const out = new Map<string, { signPublicKey: Uint8Array; boxPublicKey: Uint8Array }>();
  raw.forEach((entry, i) => {
    const p = parsePublicIdentity(entry, `allow-list[${i}]`);
    if (!p.id) throw new Error(`allow-list[${i}] has no bank id`);
    if (out.has(p.id)) throw new Error(`allow-list names bank '${p.id}' twice`);
    out.set(p.id, { signPublicKey: p.signPublicKey, boxPublicKey: p.boxPublicKey });
  });
  return out;
}
