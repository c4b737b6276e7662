// Model configuration (JSON-serialisable; travels inside checkpoints) and the data transformer's
// output layout that the model is built against.

/** One block of the transformer's output (see docs/ARCHITECTURE.md). */
export interface OutputSpan {
  column: string;
  kind: 'tanh' | 'softmax';
  dim: number;
  offset: number;
}

export interface ModelConfig {
  /** 'mlp': plain MLPs (default). 'ctgan': residual BN generator + PacGAN discriminator (Xu et al. 2019). */
  architecture: 'mlp' | 'ctgan';
  noiseDim: number;
  generatorDims: number[];
  discriminatorDims: number[];
  /** PacGAN packing degree (Lin et al. 2018): D judges `pac` rows at once. The batch size must be a multiple. */
  pac: number;
  leakySlope: number;
  dropout: number;
  /** Gumbel-softmax temperature for discrete spans in training (Jang et al. 2017). */
  gumbelTau: number;
  /** 'ns': non-saturating GAN loss (Goodfellow et al. 2014). 'wgan-gp': Gulrajani et al. 2017. */
  loss: 'ns' | 'wgan-gp';
  gpLambda: number;
  /** Seeds weight initialisation and, derived from it, training/sampling noise. */
  seed: number;
  /**
   * Columns whose softmax span is part of the conditional vector (CTGAN training-by-sampling).
   * null/absent: every softmax span whose column has no tanh span, i.e. the discrete columns
   * (a continuous column's mode indicator is not conditioned on, as in CTGAN). [] disables conditioning.
   */
  conditionalColumns?: string[] | null;
  /** Batch-norm running-statistics momentum (PyTorch convention: new = (1-m)·old + m·batch). */
  batchNormMomentum: number;
  /**
   * Auxiliary classifier (CTAB-GAN, Zhao et al. 2021): a network C trained on real rows to predict
   * this discrete column (the schema's target) from the other columns; the generator's loss adds
   * classifierWeight · CE(C(generated features), generated label), so the generated rows keep the
   * label–feature relation that train-on-synthetic models need. null: no classifier.
   * C reads real rows, so under DP-SGD it is clipped (its own share of the norm) and noised with D:
   * one mechanism. The sampler draws generated rows' labels from C (shared/sampling).
   */
  classifierColumn: string | null;
  /**
   * Hidden widths of C (LeakyReLU, no dropout, no batch norm); [] = a linear (logistic) classifier.
   * Default [] since 2026-12-07 (was one layer of 128). Under DP-SGD the noise's random walk grows
   * with the parameter count (244 weights against 15,874 on bank-marketing) and inflates an MLP's
   * logits (calibration slope 0.35-0.45 on the real holdout, 0.70 linear), so the linear C ranks
   * better: `node bin/run-ts.mjs bench/privacy-utility.ts --eps 1 --rounds 8 --steps 40 --lr
   * 0.0002 --ema 0.8 --classifier-holdout --repeat 2 --only DATA --model '{"classifierDims":[]}'`,
   * C's own holdout AUC: bank-marketing 0.902-0.905 (the MLP's table runs: 0.85-0.89),
   * credit-default 0.764; TSTR AUC ratio / PR-AUC in BENCHMARKS.md's notes of that day. Without
   * DP the MLP ranks a little better: CLASSIFIER_PRESETS, the coordinator's --classifier.
   */
  classifierDims: number[];
  classifierWeight: number;
  /**
   * Weight of the generator's marginal term: the mean over discrete columns of KL(noisy category
   * shares ‖ the generated batch's shares), the batch's rows importance-weighted from the G step's
   * cond distribution (∝ log-frequency) to the frequency-proportional one under which every column
   * should follow its marginal. The shares are the consortium's DP-noised category counts, already
   * released (post-processing: no privacy cost); the term applies when those counts are given and
   * rows are drawn 'uniform' (as under DP). Under DP noise D alone can leave the generator's
   * unconditioned columns near uniform on a small bank (the demo's `country` once came out 33%
   * `domestic` against 90% real). Single runs of bench:privacy at ε = 1 (`--model
   * '{"marginalWeight": w}'`), column shapes / pairs at 0 → 10: credit-default 0.845-0.852 /
   * 0.737-0.740 (three runs) → 0.895 / 0.786, simulated (24k) 0.881-0.906 → 0.921, TSTR unchanged
   * within the spread (BENCHMARKS.md, notes of 2026-12-07). 0 = off.
   */
  marginalWeight: number;
  /**
   * C's Adam learning rate without DP-SGD. Higher than the GAN's 2e-4: C is a small supervised
   * model with a fixed target. 1e-2 since C became linear (1e-3 with the 128-unit MLP). A linear C
   * at 1e-3 under-fits in the federation's steps: `node bin/run-ts.mjs bench/quality.ts --only
   * bank-marketing --no-write --classifier linear [--model '{"classifierLr":0.001}']`, TSTR AUC
   * ratio 0.968 at 1e-2 (the 2026-12-07 run) against 0.951 at 1e-3.
   */
  classifierLr: number;
  /**
   * C's Adam learning rate under DP-SGD. Higher again: the noise dominates each private gradient,
   * so Adam moves each weight by about lr per step whatever the signal, and the budget allows only
   * a few hundred steps: T steps drift a weight by about T·lr·(signal/noise), while the noise
   * alone walks it by about √T·lr. Single runs of bench/privacy-utility.ts at ε = 1 (8 × 40 steps,
   * `--model '{"classifierLrDp": lr}'`): at 1e-3 bank-marketing's TSTR ratio stayed at 0.69; 3e-3
   * gave 0.87–0.88 and 6e-3 0.93 (credit-default 0.95 and 0.93, within run-to-run noise). After
   * the fake packs' gradients were clipped too (dp-sgd.ts), with D at the plan's rate: 6e-3 gave
   * bank-marketing 0.90, 1.5e-2 gave 0.95 (credit-default 0.95, simulated 0.81) and 3e-2 0.93; the
   * agreement of the sampled labels with a GBDT fitted on the real rows (--oracle-labels) rose
   * from 0.68 to 0.76 on bank-marketing.
   * 5e-2 since 2026-12-06: at 1.5e-2 C under-fits a rare class. On simulated-96k (0.45% fraud) C
   * itself ranked the real holdout at AUC 0.86-0.88, yet its labels on the synthetic rows were so
   * diffuse that a GBDT trained on the sample reached PR-AUC 0.03-0.06 there (TRTR 0.62-0.64).
   * Medians of three runs at ε = 1 (--repeat 3, --classifier-holdout), 1.5e-2 → 5e-2: TSTR AUC
   * ratio / PR-AUC simulated-96k 0.913 / 0.056 → 0.947 / 0.321; bank-marketing 0.938 / 0.502 →
   * 0.933 / 0.498; credit-default PR-AUC 0.523 (ratio 0.971, recall 0.53 vs 0.47 before).
   */
  classifierLrDp: number;
  /**
   * Under DP-SGD, D's Adam rate is the plan's discriminator rate times this (1 = the same rate).
   * Adam divides each coordinate's step by the root of its second moment; under DP-SGD that moment
   * is mostly the noise's variance ((σC/E)², the same for every weight), so DP-Adam is DP-SGD with
   * rate lr·E/(σC) (Tang et al. 2023, "DP-AdamBC"), and the signal moves D far less per step than
   * the same lr does without noise. Single runs of bench/privacy-utility.ts at ε = 1 (8 × 40 steps,
   * D at 2e-4 × scale, `--model '{"discriminatorLrDpScale": s}'`), column shapes / TSTR ratio /
   * minority recall: bank-marketing at 1: 0.85 / 0.95 / 0.21; at 3: 0.91 / 0.94 / 0.33; 6: 0.93 /
   * 0.93 / 0.27; 10: 0.94 / 0.95 / 0.56; 20: 0.94 / 0.94 / 0.53. credit-default at 1: 0.73 / 0.95 /
   * 0.40; 3: 0.85 / 0.94 / 0.44; 6: 0.88 / 0.97 / 0.47; 10: 0.89 / 0.97 / 0.44. (scale 1 and 3 ran
   * with the plan's D rate set through --lr-d.)
   */
  discriminatorLrDpScale: number;
  /**
   * C reads each numeric column's within-mode scalar α = (u − μ_k)/(4σ_k) times this (1 = as
   * encoded). α's spread within a mode is about 0.25 against 1 for a one-hot slot, so under DP-SGD's
   * per-example clipping its weights get a small share of each clipped gradient and the isotropic
   * noise drowns them; a scale of about 4 gives α the one-hots' scale. Experimental (bench:privacy
   * `--model '{"classifierScalarScale": 4}'`); default 1: at ε = 1 over four pairs of runs on
   * simulated-96k the TSTR PR-AUC median rose 0.359 → 0.412 but the minority recall target was met
   * in 2 of 4 against 3 of 4; bank-marketing unchanged in three runs (BENCHMARKS.md, twelfth session).
   */
  classifierScalarScale: number;
}

export const DEFAULT_MODEL_CONFIG: Readonly<ModelConfig> = Object.freeze({
  architecture: 'mlp',
  noiseDim: 128,
  generatorDims: [256, 256],
  discriminatorDims: [256, 256],
  pac: 1,
  leakySlope: 0.2,
  dropout: 0.5,
  gumbelTau: 0.2,
  loss: 'ns',
  gpLambda: 10,
  seed: 0,
  conditionalColumns: null,
  batchNormMomentum: 0.1,
  classifierColumn: null,
  classifierDims: [], // CLASSIFIER_PRESETS.linear
  classifierWeight: 1,
  marginalWeight: 10,
  classifierLr: 1e-2,
  classifierLrDp: 5e-2,
  discriminatorLrDpScale: 10,
  classifierScalarScale: 1,
}) as ModelConfig;

/**
 * C's two forms, the coordinator's `--classifier` (ModelConfig.classifierDims and classifierLr).
 * 'linear' (the default) is what DP-SGD needs (see classifierDims). 'mlp', one hidden layer of 128
 * at 1e-3 (the default until 2026-12-07), is for a consortium whose banks all train WITHOUT
 * record-level DP (the agent's --no-dp; testing): without noise it ranks a little better.
 * bench:quality (non-private, bank-marketing, seeds 7, 8, 9): TSTR AUC ratio 0.971-0.973 with
 * 'mlp', 0.965-0.968 with 'linear'.
 */
export const CLASSIFIER_PRESETS: Readonly<Record<'linear' | 'mlp', Readonly<Pick<ModelConfig, 'classifierDims' | 'classifierLr'>>>> = Object.freeze({
  linear: Object.freeze({ classifierDims: [], classifierLr: 1e-2 }),
  mlp: Object.freeze({ classifierDims: [128], classifierLr: 1e-3 }),
});

/** A copy of C's preset for a ModelConfig override (the config owns its arrays; the presets stay frozen). */
export function classifierPreset(form: keyof typeof CLASSIFIER_PRESETS): { classifierDims: number[]; classifierLr: number } {
  const p = CLASSIFIER_PRESETS[form];
  return { classifierDims: [...p.classifierDims], classifierLr: p.classifierLr };
}

/** Defaults for the chosen architecture ('ctgan' packs 10 rows and uses WGAN-GP, like CTGAN). */
export function defaultModelConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  const arch = overrides.architecture ?? DEFAULT_MODEL_CONFIG.architecture;
  const base: ModelConfig =
    arch === 'ctgan'
      ? { ...DEFAULT_MODEL_CONFIG, architecture: 'ctgan', pac: 10, loss: 'wgan-gp' }
      : { ...DEFAULT_MODEL_CONFIG };
  return parseModelConfig({ ...base, ...stripUndefined(overrides) });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const KEYS = new Set(Object.keys(DEFAULT_MODEL_CONFIG));

/**
 * Validates an untrusted config (e.g. from a checkpoint or CLI JSON). Missing keys take the
 * defaults; unknown keys and bad values throw an error naming the key.
 */
export function parseModelConfig(raw: unknown): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('model config: expected a JSON object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KEYS.has(k)) throw new Error(`model config: unknown key '${k}' (known: ${[...KEYS].join(', ')})`);
  }
  const get = <K extends keyof ModelConfig>(k: K): unknown => (o[k] === undefined ? DEFAULT_MODEL_CONFIG[k] : o[k]);
  const int = (k: keyof ModelConfig, min: number, max: number): number => {
    const v = get(k);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new Error(`model config: '${k}' must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const num = (k: keyof ModelConfig, min: number, max: number, openMin = false): number => {
    const v = get(k);
    if (typeof v !== 'number' || !Number.isFinite(v) || v > max || (openMin ? v <= min : v < min)) {
      throw new Error(`model config: '${k}' must be a number in ${openMin ? '(' : '['}${min}, ${max}], got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const dims = (k: 'generatorDims' | 'discriminatorDims' | 'classifierDims'): number[] => {
    const v = get(k);
    // The classifier may be linear (no hidden layer); G and D need at least one.
    const min = k === 'classifierDims' ? 0 : 1;
    if (!Array.isArray(v) || v.length < min || v.length > 16 || v.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > 8192)) {
      throw new Error(`model config: '${k}' must be a${min ? ' non-empty' : 'n'} array (at most 16) of integers in [1, 8192], got ${JSON.stringify(v)}`);
    }
    return [...(v as number[])];
  };
  const oneOf = <T extends string>(k: keyof ModelConfig, allowed: readonly T[]): T => {
    const v = get(k);
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      throw new Error(`model config: '${k}' must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`);
    }
    return v as T;
  };
  let conditionalColumns: string[] | null = null;
  const cc = o.conditionalColumns;
  if (cc !== undefined && cc !== null) {
    if (!Array.isArray(cc) || cc.some((c) => typeof c !== 'string' || c === '')) {
      throw new Error(`model config: 'conditionalColumns' must be null or an array of column names, got ${JSON.stringify(cc)}`);
    }
    if (new Set(cc).size !== cc.length) throw new Error(`model config: 'conditionalColumns' lists a column twice`);
    conditionalColumns = [...(cc as string[])];
  }
  const clf = o.classifierColumn;
  if (clf !== undefined && clf !== null && (typeof clf !== 'string' || clf === '')) {
    throw new Error(`model config: 'classifierColumn' must be null or a column name, got ${JSON.stringify(clf)}`);
  }
  return {
    architecture: oneOf('architecture', ['mlp', 'ctgan'] as const),
    noiseDim: int('noiseDim', 1, 4096),
    generatorDims: dims('generatorDims'),
    discriminatorDims: dims('discriminatorDims'),
    pac: int('pac', 1, 64),
    leakySlope: num('leakySlope', 0, 1),
    dropout: num('dropout', 0, 0.95),
    gumbelTau: num('gumbelTau', 0, 10, true),
    loss: oneOf('loss', ['ns', 'wgan-gp'] as const),
    gpLambda: num('gpLambda', 0, 1e4),
    seed: int('seed', 0, 2 ** 32 - 1),
    conditionalColumns,
    batchNormMomentum: num('batchNormMomentum', 0, 1),
    classifierColumn: typeof clf === 'string' ? clf : null,
    classifierDims: dims('classifierDims'),
    classifierWeight: num('classifierWeight', 0, 1e3),
    marginalWeight: num('marginalWeight', 0, 1e3),
    classifierLr: num('classifierLr', 0, 1, true),
    classifierLrDp: num('classifierLrDp', 0, 1, true),
    discriminatorLrDpScale: num('discriminatorLrDpScale', 0, 100, true),
    classifierScalarScale: num('classifierScalarScale', 0, 100, true),
  };
}

/** Checks spans tile [0, outputDim) in order without gaps; returns outputDim. */
export function validateSpans(spans: readonly OutputSpan[], outputDim?: number): number {
  if (!Array.isArray(spans) || spans.length === 0) throw new Error('spans: expected a non-empty array of output spans');
  let off = 0;
  spans.forEach((s, i) => {
    if (typeof s.column !== 'string' || s.column === '') throw new Error(`spans[${i}]: column must be a non-empty string`);
    if (s.kind !== 'tanh' && s.kind !== 'softmax') throw new Error(`spans[${i}] ('${s.column}'): kind must be 'tanh' or 'softmax', got ${JSON.stringify(s.kind)}`);
    if (!Number.isInteger(s.dim) || s.dim < 1) throw new Error(`spans[${i}] ('${s.column}'): dim must be a positive integer, got ${s.dim}`);
    if (s.kind === 'softmax' && s.dim < 2) throw new Error(`spans[${i}] ('${s.column}'): a softmax span needs dim >= 2, got ${s.dim}`);
    if (s.offset !== off) throw new Error(`spans[${i}] ('${s.column}'): offset ${s.offset} but the previous spans end at ${off}`);
    off += s.dim;
  });
  if (outputDim !== undefined && outputDim !== off) throw new Error(`spans: cover ${off} dims but outputDim is ${outputDim}`);
  return off;
}

/** A softmax span that is part of the conditional vector. */
export interface CondSpan {
  /** Index into the transformer's spans. */
  spanIndex: number;
  column: string;
  /** Offset of the span in a data row. */
  offset: number;
  dim: number;
  /** Offset of the span in the conditional vector. */
  condOffset: number;
}

/** The classifier's label span (the target column's softmax span), or null when there is no classifier. */
export function classifierSpan(config: ModelConfig, spans: readonly OutputSpan[]): OutputSpan | null {
  const c = config.classifierColumn;
  if (c === null) return null;
  const s = spans.find((x) => x.column === c);
  if (!s || s.kind !== 'softmax' || spans.some((x) => x.column === c && x.kind === 'tanh')) {
    throw new Error(`model config: classifier column '${c}' must be a discrete column of the transformer output (one softmax span)`);
  }
  if (s.dim === spans.reduce((n, x) => n + x.dim, 0)) throw new Error(`model config: classifier column '${c}' is the only column; nothing to predict it from`);
  return s;
}

/** The conditional vector's layout for this config and these spans. */
export function conditionalSpans(config: ModelConfig, spans: readonly OutputSpan[]): CondSpan[] {
  validateSpans(spans);
  let chosen: number[];
  if (config.conditionalColumns == null) {
    const continuous = new Set(spans.filter((s) => s.kind === 'tanh').map((s) => s.column));
    chosen = spans.map((s, i) => (s.kind === 'softmax' && !continuous.has(s.column) ? i : -1)).filter((i) => i >= 0);
  } else {
    chosen = config.conditionalColumns.map((c) => {
      const idx = spans.findIndex((s) => s.column === c && s.kind === 'softmax');
      if (idx < 0) throw new Error(`model config: conditional column '${c}' has no softmax span in the transformer output`);
      return idx;
    });
    chosen.sort((a, b) => a - b);
  }
  let condOffset = 0;
  return chosen.map((i) => {
    const s = spans[i]!;
    const c = { spanIndex: i, column: s.column, offset: s.offset, dim: s.dim, condOffset };
    condOffset += s.dim;
    return c;
  });
}
