import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ConfigError, SETTINGS, loadCoordinatorConfigFile, mergeCoordinatorConfig, parseCoordinatorConfig, toConfigFile, toCoordinatorSettings } from '../../coordinator/config';

const base = '/etc/fedsynth';
const parse = (raw: unknown) => parseCoordinatorConfig(raw, { baseDir: base });
const FULL = {
  host: '0.0.0.0',
  port: 7601,
  schema: 'schema.json',
  stateDir: '/var/lib/fedsynth/state',
  key: 'keys/coordinator.json',
  allowList: './allow.json',
  maxFrameMb: 16,
  exitWhenFinished: true,
  insecureAggregation: false,
  secureAggregation: { distributedDpNoise: 2 },
  model: { architecture: 'ctgan', transformer: 'simple', seed: 7, generatorEma: 0.8, classifierWeight: 2.5, classifier: 'mlp', marginalWeight: 4, pointMasses: true, labelCalibrationNoise: 30, pairCountsNoise: 25, pairWeight: 5 },
  policy: { minClients: 3, rounds: 9, deadlineSeconds: 120, waitForClientsSeconds: 0, retryLimit: 2 },
  plan: { localSteps: 20, batchSize: 256, lr: 0.001, dSteps: 2, gSteps: 3, updateClipNorm: 5 },
};

describe('coordinator config file', () => {
  it('represents every setting, resolving relative paths against the file directory', () => {
    const v = parse(FULL);
    expect(Object.keys(v).sort()).toEqual(SETTINGS.map((s) => s.option).sort());
    const s = toCoordinatorSettings(mergeCoordinatorConfig(v, {}, () => undefined));
    expect(s).toMatchObject({
      host: '0.0.0.0',
      port: 7601,
      schemaPath: '/etc/fedsynth/schema.json',
      stateDir: '/var/lib/fedsynth/state',
      keyPath: '/etc/fedsynth/keys/coordinator.json',
      allowListPath: '/etc/fedsynth/allow.json',
      model: { architecture: 'ctgan', seed: 7, classifierWeight: 2.5, marginalWeight: 4, classifierDims: [128], classifierLr: 1e-3 },
      transformer: 'simple',
      pointMasses: true,
      policy: { minClients: 3, maxRounds: 9, deadlineMs: 120_000, waitForClientsMs: 0, retryLimit: 2 },
      plan: { localSteps: 20, batchSize: 256, lrGenerator: 0.001, lrDiscriminator: 0.001, dSteps: 2, gSteps: 3, loss: 'wgan-gp', updateClipNorm: 5 },
      maxFrameBytes: 16 * 1024 * 1024,
      exitWhenFinished: true,
      insecureAggregation: false,
      secureAggregation: { distributedDp: { noiseMultiplier: 2 } },
      generatorEma: 0.8,
      labelCalibrationNoise: 30,
      pairCounts: { noiseMultiplier: 25, weight: 5 },
    });
  });

  it('refuses distributed DP noise without secure aggregation, naming both keys', () => {
    const v = parse({ ...FULL, insecureAggregation: true });
    expect(() => toCoordinatorSettings(mergeCoordinatorConfig(v, {}, () => undefined))).toThrow(/distributedDpNoise.*insecureAggregation/);
    expect(() => parse({ ...FULL, secureAggregation: { distributedDpNoise: -1 } })).toThrow(/secureAggregation\.distributedDpNoise/);
  });

  it('round-trips through the effective-config printer', () => {
    const v = mergeCoordinatorConfig(parse(FULL), {}, () => undefined);
    expect(parse(JSON.parse(JSON.stringify(toConfigFile(v))))).toEqual(v);
  });

  it.each([
    [{ policy: { minClients: 0 } }, 'config.policy.minClients must be an integer ≥ 1, got 0'],
    [{ policy: { minClients: 2.5 } }, 'config.policy.minClients must be an integer ≥ 1, got 2.5'],
    [{ policy: { minClients: '2' } }, "config.policy.minClients must be an integer ≥ 1, got '2'"],
    [{ port: 70000 }, 'config.port must be an integer from 0 to 65535, got 70000'],
    [{ plan: { lr: 0 } }, 'config.plan.lr must be a number > 0, got 0'],
    [{ policy: { waitForClientsSeconds: -1 } }, 'config.policy.waitForClientsSeconds must be a number ≥ 0, got -1'],
    [{ model: { architecture: 'gpt' } }, "config.model.architecture must be one of 'mlp', 'ctgan', got 'gpt'"],
    [{ model: { classifier: 'tree' } }, "config.model.classifier must be one of 'linear', 'mlp', got 'tree'"],
    [{ schema: '' }, "config.schema must be a non-empty file path (string), got ''"],
    [{ exitWhenFinished: 'yes' }, "config.exitWhenFinished must be true or false, got 'yes'"],
    [{ policy: 3 }, 'config.policy must be an object, got 3'],
    [{ policy: { minClient: 2 } }, 'config.policy.minClient is not a known setting (known at config.policy: minClients, rounds, deadlineSeconds, waitForClientsSeconds, retryLimit)'],
    [{ minClients: 2 }, 'config.minClients is not a known setting'],
    [[], 'config must be a JSON object, got an array'],
  ])('rejects %j with a message naming the key path', (raw, message) => {
    expect(() => parse(raw)).toThrow(ConfigError);
    expect(() => parse(raw)).toThrow(message);
  });

  it('explicit flags override the file, defaults do not', () => {
    const file = parse({ schema: 's.json', port: 9000, policy: { minClients: 3, rounds: 7 } });
    const cli = { port: '7600', rounds: '2', minClients: '2', lr: '1e-3', exitWhenFinished: true };
    const source = (k: string) => ({ rounds: 'cli', lr: 'cli', exitWhenFinished: 'cli' })[k] ?? 'default';
    const s = toCoordinatorSettings(mergeCoordinatorConfig(file, cli, source));
    expect(s.port).toBe(9000); // commander default: the file wins
    expect(s.policy.minClients).toBe(3); // commander default: the file wins
    expect(s.policy.maxRounds).toBe(2); // explicit flag wins
    expect(s.plan.lrGenerator).toBe(1e-3);
    expect(s.exitWhenFinished).toBe(true);
    expect(s.policy.deadlineMs).toBe(300_000); // built-in default
  });

  it("gives C its linear form unless --classifier mlp asks for the hidden layer (a consortium training without DP)", () => {
    const linear = toCoordinatorSettings(mergeCoordinatorConfig(parse({ schema: 's.json' }), {}, () => undefined));
    expect(linear.model).toMatchObject({ classifierDims: [], classifierLr: 1e-2 });
    const mlp = toCoordinatorSettings(mergeCoordinatorConfig(parse({ schema: 's.json' }), { classifier: 'mlp' }, () => 'cli'));
    expect(mlp.model).toMatchObject({ classifierDims: [128], classifierLr: 1e-3 });
    expect(() => mergeCoordinatorConfig({}, { classifier: 'forest' }, () => 'cli')).toThrow("--classifier must be one of 'linear', 'mlp', got 'forest'");
  });

  it('calibrates the labels after the last round at noise multiplier 20 unless told otherwise; 0 turns it off', () => {
    expect(toCoordinatorSettings(mergeCoordinatorConfig(parse({ schema: 's.json' }), {}, () => undefined)).labelCalibrationNoise).toBe(20);
    expect(toCoordinatorSettings(mergeCoordinatorConfig(parse({ schema: 's.json' }), { labelCalibrationNoise: '0' }, () => 'cli')).labelCalibrationNoise).toBeUndefined();
    expect(toCoordinatorSettings(mergeCoordinatorConfig(parse({ schema: 's.json', model: { labelCalibrationNoise: 50 } }), {}, () => undefined)).labelCalibrationNoise).toBe(50);
    expect(() => mergeCoordinatorConfig({}, { labelCalibrationNoise: '-1' }, () => 'cli')).toThrow(/--label-calibration-noise must be a number ≥ 0/);
  });

  it('validates explicit flags with the flag name', () => {
    expect(() => mergeCoordinatorConfig({}, { minClients: '0' }, () => 'cli')).toThrow("--min-clients must be an integer ≥ 1, got '0'");
    expect(() => mergeCoordinatorConfig({}, { deadline: 'soon' }, () => 'cli')).toThrow("--deadline must be a number > 0, got 'soon'");
  });

  it('requires a schema from the file or the flags', () => {
    expect(() => toCoordinatorSettings(mergeCoordinatorConfig({}, {}, () => undefined))).toThrow(/schema is required/);
  });

  it('loads a file from disk and names the file in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-cfg-'));
    try {
      const good = join(dir, 'consortium.json');
      writeFileSync(good, JSON.stringify({ schema: 'data/schema.json', stateDir: 'state' }));
      expect(loadCoordinatorConfigFile(good)).toEqual({ schema: join(dir, 'data/schema.json'), stateDir: join(dir, 'state') });
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, '{ "port": 1, }');
      expect(() => loadCoordinatorConfigFile(bad)).toThrow(/bad\.json is not valid JSON/);
      writeFileSync(bad, JSON.stringify({ policy: { retryLimit: -1 } }));
      expect(() => loadCoordinatorConfigFile(bad)).toThrow(`${bad}: config.policy.retryLimit must be an integer ≥ 0, got -1`);
      expect(() => loadCoordinatorConfigFile(join(dir, 'missing.json'))).toThrow(/cannot read the config file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('`fedsynth coordinator --config FILE` merges the file under explicit flags (--print-config)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-cfg-'));
    try {
      const file = join(dir, 'consortium.json');
      writeFileSync(file, JSON.stringify({ schema: 'schema.json', port: 9100, policy: { minClients: 3, rounds: 7 } }));
      const out = execFileSync(process.execPath, [resolve(__dirname, '../../bin/fedsynth.mjs'), 'coordinator', '--config', file, '--rounds', '2', '--print-config'], { encoding: 'utf8' });
      const cfg = JSON.parse(out);
      expect(cfg).toMatchObject({ schema: join(dir, 'schema.json'), port: 9100, policy: { minClients: 3, rounds: 2 }, plan: { localSteps: 50 } });
      writeFileSync(file, JSON.stringify({ policy: { minClients: 0 } }));
      let err = '';
      try {
        execFileSync(process.execPath, [resolve(__dirname, '../../bin/fedsynth.mjs'), 'coordinator', '--config', file], { encoding: 'utf8', stdio: 'pipe' });
      } catch (e) {
        err = String((e as { stderr?: string }).stderr);
      }
      expect(err).toContain('config.policy.minClients must be an integer ≥ 1, got 0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
