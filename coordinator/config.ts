// The coordinator's configuration: a validated JSON file (`fedsynth coordinator --config FILE`),
// command-line flags, and defaults, merged in that order of precedence: a flag given explicitly on
// the command line wins over the file, the file wins over the built-in default. Pure functions
// (no I/O except `loadCoordinatorConfigFile`), unit-tested in test/coordinator/config.test.ts.
//
// File format (every key optional except that `schema` must come from the file or --schema;
// unknown keys are errors, so a typo never silently falls back to a default):
//
//   {
//     "host": "0.0.0.0",                  // --host                  listen address
//     "port": 7600,                       // --port                  0 = any free port
//     "schema": "schema.json",            // --schema                consortium schema (required)
//     "stateDir": "state",                // --state-dir             database, checkpoints, identity
//     "key": "keys/coordinator.json",     // --key                   coordinator identity file
//     "allowList": "allow.json",          // --allow-list            banks' public identities
//     "maxFrameMb": 32,                   // --max-frame-mb          largest accepted message (MiB)
//     "exitWhenFinished": false,          // --exit-when-finished
//     "insecureAggregation": false,       // --insecure-aggregation  opt out of secure aggregation (needed below 3 banks)
//     "secureAggregation": { "distributedDpNoise": 2 }, // --distributed-dp-noise  client-level DP: Skellam noise in the ring (off if absent)
//     "model":  { "architecture": "mlp",  // --architecture          mlp | ctgan
//                 "transformer": "gmm",   // --transformer           gmm (fitted from DP summaries) | simple
//                 "seed": 42,             // --seed                  initial global model seed
//                 "generatorEma": 0.8,    // --generator-ema         β of the published generator's average over rounds (0 = off)
//                 "classifierWeight": 1,  // --classifier-weight    weight of the auxiliary classifier of the schema's target (0 = off)
//                 "classifier": "linear", // --classifier           linear (for DP-SGD) | mlp (banks training without DP)
//                 "marginalWeight": 10,   // --marginal-weight     weight of the generator's match to the noisy category shares (0 = off)
//                 "pointMasses": false,   // --point-masses        sample rows exactly at 0 or a declared bound at their noisy share (gmm)
//                 "labelCalibrationNoise": 20, // --label-calibration-noise  noise multiplier of the banks' calibration counts for C's labels (0 = off)
//                 "pairCountsNoise": 0,   // --pair-counts-noise   noise multiplier of the banks' two-way counts, the generator's pair targets (0 = off)
//                 "pairWeight": 10 },     // --pair-weight         weight of the generator's match to the pair targets
//     "policy": { "minClients": 2,        // --min-clients           banks to start and commit a round (≥ 1)
//                 "rounds": 5,            // --rounds                committed rounds before stopping (0 = forever)
//                 "deadlineSeconds": 300, // --deadline              stragglers past it are dropped from the round
//                 "waitForClientsSeconds": 2, // --wait-for-clients  wait for late joiners before a round
//                 "retryLimit": 0 },      // --retry-limit           failed attempts of a round before giving up (0 = never)
//     "plan":   { "localSteps": 50,       // --local-steps
//                 "batchSize": 500,       // --batch-size
//                 "lr": 0.0002,           // --lr                    Adam rate of G and D
//                 "dSteps": 1,            // --d-steps
//                 "gSteps": 1,            // --g-steps               generator updates per local step
//                 "updateClipNorm": 10 }  // --update-clip-norm      L2 bound on each bank's update
//   }
//
// Relative paths in the file (schema, stateDir, key, allowList) resolve against the directory of the
// file, not the working directory; relative paths given as flags resolve against the working
// directory as usual. Errors name the key path: `config.policy.minClients must be an integer ≥ 1, got 0`.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { CoordinatorSettings } from './run-coordinator';
import { classifierPreset } from '../shared/model/config';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Kind =
  | { type: 'string' }
  | { type: 'path' }
  | { type: 'boolean' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'int'; min: number; max?: number }
  | { type: 'number'; min: number; exclusiveMin?: boolean; max?: number };

interface SettingDef {
  /** Key path in the file, e.g. ['policy', 'minClients']. */
  path: readonly string[];
  /** The commander option key (camelCase of the flag) and the flag itself. */
  option: string;
  flag: string;
  kind: Kind;
  default?: string | number | boolean;
}

/** Every coordinator setting, once: file key path, CLI flag, validation and default. */
export const SETTINGS: readonly SettingDef[] = [
  { path: ['host'], option: 'host', flag: '--host', kind: { type: 'string' }, default: '127.0.0.1' },
  { path: ['port'], option: 'port', flag: '--port', kind: { type: 'int', min: 0, max: 65535 }, default: 7600 },
  { path: ['schema'], option: 'schema', flag: '--schema', kind: { type: 'path' } },
  { path: ['stateDir'], option: 'stateDir', flag: '--state-dir', kind: { type: 'path' }, default: 'coordinator-state' },
  { path: ['key'], option: 'key', flag: '--key', kind: { type: 'path' } },
  { path: ['allowList'], option: 'allowList', flag: '--allow-list', kind: { type: 'path' } },
  { path: ['maxFrameMb'], option: 'maxFrameMb', flag: '--max-frame-mb', kind: { type: 'number', min: 0, exclusiveMin: true, max: 1024 }, default: 32 },
  { path: ['exitWhenFinished'], option: 'exitWhenFinished', flag: '--exit-when-finished', kind: { type: 'boolean' }, default: false },
  { path: ['insecureAggregation'], option: 'insecureAggregation', flag: '--insecure-aggregation', kind: { type: 'boolean' }, default: false },
  { path: ['secureAggregation', 'distributedDpNoise'], option: 'distributedDpNoise', flag: '--distributed-dp-noise', kind: { type: 'number', min: 0, exclusiveMin: true, max: 1000 } },
  { path: ['model', 'architecture'], option: 'architecture', flag: '--architecture', kind: { type: 'enum', values: ['mlp', 'ctgan'] }, default: 'mlp' },
  { path: ['model', 'transformer'], option: 'transformer', flag: '--transformer', kind: { type: 'enum', values: ['gmm', 'simple'] }, default: 'gmm' },
  { path: ['model', 'seed'], option: 'seed', flag: '--seed', kind: { type: 'int', min: 0, max: 2 ** 32 - 1 }, default: 42 },
  { path: ['model', 'generatorEma'], option: 'generatorEma', flag: '--generator-ema', kind: { type: 'number', min: 0, max: 0.999 }, default: 0.8 },
  { path: ['model', 'classifierWeight'], option: 'classifierWeight', flag: '--classifier-weight', kind: { type: 'number', min: 0, max: 100 }, default: 1 },
  { path: ['model', 'classifier'], option: 'classifier', flag: '--classifier', kind: { type: 'enum', values: ['linear', 'mlp'] }, default: 'linear' },
  { path: ['model', 'marginalWeight'], option: 'marginalWeight', flag: '--marginal-weight', kind: { type: 'number', min: 0, max: 1000 }, default: 10 },
  { path: ['model', 'pointMasses'], option: 'pointMasses', flag: '--point-masses', kind: { type: 'boolean' }, default: false },
  { path: ['model', 'labelCalibrationNoise'], option: 'labelCalibrationNoise', flag: '--label-calibration-noise', kind: { type: 'number', min: 0, max: 10000 }, default: 20 },
  { path: ['model', 'pairCountsNoise'], option: 'pairCountsNoise', flag: '--pair-counts-noise', kind: { type: 'number', min: 0, max: 10000 }, default: 0 },
  { path: ['model', 'pairWeight'], option: 'pairWeight', flag: '--pair-weight', kind: { type: 'number', min: 0, max: 1000 }, default: 10 },
  { path: ['policy', 'minClients'], option: 'minClients', flag: '--min-clients', kind: { type: 'int', min: 1 }, default: 2 },
  { path: ['policy', 'rounds'], option: 'rounds', flag: '--rounds', kind: { type: 'int', min: 0 }, default: 5 },
  { path: ['policy', 'deadlineSeconds'], option: 'deadline', flag: '--deadline', kind: { type: 'number', min: 0, exclusiveMin: true }, default: 300 },
  { path: ['policy', 'waitForClientsSeconds'], option: 'waitForClients', flag: '--wait-for-clients', kind: { type: 'number', min: 0 }, default: 2 },
  { path: ['policy', 'retryLimit'], option: 'retryLimit', flag: '--retry-limit', kind: { type: 'int', min: 0 }, default: 0 },
  { path: ['plan', 'localSteps'], option: 'localSteps', flag: '--local-steps', kind: { type: 'int', min: 1 }, default: 50 },
  { path: ['plan', 'batchSize'], option: 'batchSize', flag: '--batch-size', kind: { type: 'int', min: 1 }, default: 500 },
  { path: ['plan', 'lr'], option: 'lr', flag: '--lr', kind: { type: 'number', min: 0, exclusiveMin: true }, default: 2e-4 },
  { path: ['plan', 'dSteps'], option: 'dSteps', flag: '--d-steps', kind: { type: 'int', min: 1 }, default: 1 },
  { path: ['plan', 'gSteps'], option: 'gSteps', flag: '--g-steps', kind: { type: 'int', min: 1, max: 100 }, default: 1 },
  { path: ['plan', 'updateClipNorm'], option: 'updateClipNorm', flag: '--update-clip-norm', kind: { type: 'number', min: 0, exclusiveMin: true }, default: 10 },
];

/** Validated values keyed by the commander option key (e.g. `minClients`, `deadline`). */
export type ConfigValues = Record<string, string | number | boolean>;

function describe(kind: Kind): string {
  switch (kind.type) {
    case 'string':
      return 'a non-empty string';
    case 'path':
      return 'a non-empty file path (string)';
    case 'boolean':
      return 'true or false';
    case 'enum':
      return `one of ${kind.values.map((v) => `'${v}'`).join(', ')}`;
    case 'int':
      return kind.max !== undefined ? `an integer from ${kind.min} to ${kind.max}` : `an integer ≥ ${kind.min}`;
    case 'number': {
      const lo = `${kind.exclusiveMin ? '>' : '≥'} ${kind.min}`;
      return kind.max !== undefined ? `a number ${lo} and ≤ ${kind.max}` : `a number ${lo}`;
    }
  }
}

function shown(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === undefined) return 'nothing';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Checks one value (already of JSON type, or a string from the command line when `fromCli`). */
function validate(def: SettingDef, raw: unknown, where: string, fromCli: boolean): string | number | boolean {
  const k = def.kind;
  const fail = (): never => {
    throw new ConfigError(`${where} must be ${describe(k)}, got ${shown(raw)}`);
  };
  switch (k.type) {
    case 'string':
    case 'path':
      if (typeof raw !== 'string' || raw.trim() === '') fail();
      return raw as string;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (fromCli && (raw === 'true' || raw === 'false')) return raw === 'true';
      return fail();
    case 'enum':
      if (typeof raw !== 'string' || !k.values.includes(raw)) fail();
      return raw as string;
    case 'int':
    case 'number': {
      let v: number;
      if (typeof raw === 'number') v = raw;
      else if (fromCli && typeof raw === 'string' && raw.trim() !== '') v = Number(raw);
      else return fail();
      if (!Number.isFinite(v)) fail();
      if (k.type === 'int' && !Number.isSafeInteger(v)) fail();
      const tooLow = k.type === 'number' && k.exclusiveMin ? v <= k.min : v < k.min;
      if (tooLow) fail();
      if (k.max !== undefined && v > k.max) fail();
      return v;
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates a config file's JSON value. Relative paths resolve against `baseDir` (the
 * file's directory). Throws ConfigError naming the key path of the first problem.
 */
export function parseCoordinatorConfig(raw: unknown, opts: { baseDir: string; where?: string }): ConfigValues {
  const root = opts.where ?? 'config';
  if (!isPlainObject(raw)) throw new ConfigError(`${root} must be a JSON object, got ${Array.isArray(raw) ? 'an array' : shown(raw)}`);
  const out: ConfigValues = {};
  const walk = (obj: Record<string, unknown>, prefix: string[]): void => {
    const here = SETTINGS.filter((d) => d.path.length > prefix.length && prefix.every((p, i) => d.path[i] === p));
    const known = [...new Set(here.map((d) => d.path[prefix.length]!))];
    for (const [key, value] of Object.entries(obj)) {
      const where = [root, ...prefix, key].join('.');
      if (!known.includes(key)) throw new ConfigError(`${where} is not a known setting (known at ${[root, ...prefix].join('.')}: ${known.join(', ')})`);
      const leaf = here.find((d) => d.path.length === prefix.length + 1 && d.path[prefix.length] === key);
      if (leaf) {
        let v = validate(leaf, value, where, false);
        if (leaf.kind.type === 'path' && typeof v === 'string' && !isAbsolute(v)) v = resolve(opts.baseDir, v);
        out[leaf.option] = v;
      } else {
        if (!isPlainObject(value)) throw new ConfigError(`${where} must be an object, got ${shown(value)}`);
        walk(value, [...prefix, key]);
      }
    }
  };
  walk(raw, []);
  return out;
}

/** Reads, parses and validates a config file; relative paths inside resolve against its directory. */
export function loadCoordinatorConfigFile(path: string): ConfigValues {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`the config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  try {
    return parseCoordinatorConfig(raw, { baseDir: dirname(resolve(path)) });
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path}: ${err.message}`);
    throw err;
  }
}

/**
 * Merges defaults < file < explicit flags. `cli` holds commander's option values and `source(key)`
 * says where each came from (commander's getOptionValueSource: 'default', 'cli', 'env', …); only
 * values not from a default override the file. CLI values are validated with the flag's name.
 */
export function mergeCoordinatorConfig(file: ConfigValues, cli: Record<string, unknown>, source: (option: string) => string | undefined): ConfigValues {
  const out: ConfigValues = {};
  for (const def of SETTINGS) {
    if (def.default !== undefined) out[def.option] = def.default;
    if (file[def.option] !== undefined) out[def.option] = file[def.option]!;
    const v = cli[def.option];
    const src = source(def.option);
    if (v !== undefined && src !== undefined && src !== 'default') out[def.option] = validate(def, v, def.flag, true);
  }
  return out;
}

/** The merged values as the settings runCoordinator takes. */
export function toCoordinatorSettings(v: ConfigValues): CoordinatorSettings & { exitWhenFinished: boolean; insecureAggregation: boolean } {
  if (typeof v.schema !== 'string') throw new ConfigError('the consortium schema is required: pass --schema <file> or set "schema" in the config file');
  if (v.distributedDpNoise !== undefined && v.insecureAggregation === true) {
    throw new ConfigError('secureAggregation.distributedDpNoise (--distributed-dp-noise) adds the DP noise inside secure aggregation; it cannot be combined with insecureAggregation (--insecure-aggregation). Without secure aggregation use the banks\' own client-level noise (fedsynth agent --client-dp-noise).');
  }
  const architecture = v.architecture as 'mlp' | 'ctgan';
  const lr = v.lr as number;
  return {
    host: v.host as string,
    port: v.port as number,
    schemaPath: v.schema,
    stateDir: v.stateDir as string,
    keyPath: v.key as string | undefined,
    allowListPath: v.allowList as string | undefined,
    model: { architecture, seed: v.seed as number, classifierWeight: v.classifierWeight as number, marginalWeight: v.marginalWeight as number, ...classifierPreset(v.classifier as 'linear' | 'mlp') },
    transformer: v.transformer as 'gmm' | 'simple',
    ...(v.pointMasses === true ? { pointMasses: true } : {}),
    policy: {
      minClients: v.minClients as number,
      maxRounds: v.rounds as number,
      deadlineMs: (v.deadline as number) * 1000,
      waitForClientsMs: (v.waitForClients as number) * 1000,
      retryLimit: v.retryLimit as number,
    },
    plan: {
      localSteps: v.localSteps as number,
      batchSize: v.batchSize as number,
      lrGenerator: lr,
      lrDiscriminator: lr,
      dSteps: v.dSteps as number,
      gSteps: v.gSteps as number,
      loss: architecture === 'ctgan' ? 'wgan-gp' : 'ns',
      updateClipNorm: v.updateClipNorm as number,
    },
    dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 },
    maxFrameBytes: Math.round((v.maxFrameMb as number) * 1024 * 1024),
    exitWhenFinished: Boolean(v.exitWhenFinished),
    insecureAggregation: v.insecureAggregation === true,
    ...((v.generatorEma as number) > 0 ? { generatorEma: v.generatorEma as number } : {}),
    ...((v.labelCalibrationNoise as number) > 0 ? { labelCalibrationNoise: v.labelCalibrationNoise as number } : {}),
    ...((v.pairCountsNoise as number) > 0 ? { pairCounts: { noiseMultiplier: v.pairCountsNoise as number, weight: v.pairWeight as number } } : {}),
    ...(v.distributedDpNoise !== undefined ? { secureAggregation: { distributedDp: { noiseMultiplier: v.distributedDpNoise as number } } } : {}),
  };
}

/** The effective configuration as a config file (for `--print-config`): round-trips through parse. */
export function toConfigFile(v: ConfigValues): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const def of SETTINGS) {
    const value = v[def.option];
    if (value === undefined) continue;
    let node = out;
    for (const p of def.path.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[def.path[def.path.length - 1]!] = def.kind.type === 'path' ? resolve(value as string) : value;
  }
  return out;
}
