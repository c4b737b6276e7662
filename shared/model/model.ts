// Conditional tabular GAN built from tf.variables (see spec.ts for the layout).
// Generator: noise ⊕ cond → MLP (or CTGAN residual BN blocks) → raw output; tanh spans get tanh,
// softmax spans Gumbel-softmax (Jang et al. 2017) in training and a categorical draw (Gumbel-max)
// when sampling. Discriminator: PacGAN-packed (Lin et al. 2018) rows ⊕ cond → LeakyReLU + dropout
// MLP → 1 logit, with every layer's input a and pre-activation z exposed for a manual (DP) backward.
import * as tf from '@tensorflow/tfjs';
import type { NamedTensor } from '../tensor/named';
import { sizeOf, validateNamedTensor } from '../tensor/named';
import { Rng } from '../tensor/random';
import { classifierSpan, conditionalSpans, parseModelConfig, validateSpans, type CondSpan, type ModelConfig, type OutputSpan } from './config';
import { leakyRelu, linear } from './layers';
import { modelDims, modelSpec, type ModelDims, type ParamSpec } from './spec';

const BN_EPS = 1e-5;

/**
 * One discriminator layer as seen by a manual backward pass: z = a·W + b, and the next layer's
 * input is leaky(z) ⊙ dropoutMask. So with δ = ∂loss/∂z per row:
 *   δ_i = (δ_{i+1} · W_{i+1}ᵀ) ⊙ dropoutMask_i ⊙ leaky'(z_i),   ∂loss/∂W_i = a_iᵀ · δ_i,  ∂loss/∂b_i = Σ_rows δ_i
 * and row r's own gradient has squared norm Σ_i (‖a_i[r]‖² + 1)·‖δ_i[r]‖² (rank-one per layer),
 * which is what exact per-example DP-SGD clipping needs. A row is one packed group of `pac`
 * records; each record is in exactly one row per step, so clipping rows bounds each record.
 */
export interface DLayerTrace {
  /** Parameter name prefix, e.g. 'D/0' or 'D/out'. */
  name: string;
  /** Layer input a (rows = packed examples). */
  a: tf.Tensor2D;
  /** Pre-activation z = a·W + b. */
  z: tf.Tensor2D;
  /** Inverted-dropout mask applied after the activation (absent for D/out or when not training). */
  dropoutMask?: tf.Tensor2D;
}

export interface DiscriminatorOutput {
  /** [rows / pac, 1] */
  logits: tf.Tensor2D;
  layers: DLayerTrace[];
}

export interface GeneratorOutput {
  /** Pre-activation output [rows, outputDim] (cond cross-entropy is taken on this, as CTGAN). */
  raw: tf.Tensor2D;
  /** tanh / Gumbel-softmax activated output [rows, outputDim]: what D sees. */
  activated: tf.Tensor2D;
  /** Per CTGAN block batch statistics (training mode only), for the running averages. */
  bnStats: { index: number; mean: tf.Tensor1D; variance: tf.Tensor1D }[];
}

export type CondRequest =
  | Float32Array
  | { span: number; category: number }
  | { column: string; category: number };

export interface GenerateOptions {
  /**
   * Fixed conditional vector(s): n·condDim or condDim values (same for all rows), or one category
   * of one conditional span (by index into model.condSpans, or by column name).
   */
  cond?: CondRequest;
  /**
   * Per conditional span, category weights (e.g. DP-noised merged counts) to draw cond vectors from
   * when `cond` is absent, as CTGAN samples: span uniformly, category ∝ weight.
   */
  categoryFrequencies?: number[][];
  /** Reproducible sampling; without it the model's own sampling stream advances. */
  seed?: number;
  /** Rows per forward pass (default 1000). */
  batchSize?: number;
  /**
   * Per softmax span (by offset), categories never to draw: the draw is from the generator's
   * softmax renormalised over the rest (the transformer's unusedCategories). Absent: all.
   */
  excluded?: readonly { offset: number; categories: readonly number[] }[];
}

let modelCounter = 0;

export class GanModel {
  readonly config: ModelConfig;
  readonly spans: readonly OutputSpan[];
  readonly condSpans: readonly CondSpan[];
  /** The auxiliary classifier's label span (config.classifierColumn), or null without a classifier. */
  readonly labelSpan: OutputSpan | null;
  readonly dims: ModelDims;
  readonly spec: readonly ParamSpec[];
  private readonly vars = new Map<string, tf.Variable>();
  private readonly sampleRng: Rng;
  private disposed = false;
  /** Per-column scale (1/tau on softmax columns, 1 on tanh columns) for the Gumbel-softmax logits. */
  private readonly invTau: tf.Tensor1D;
  private cScale: tf.Tensor1D | undefined;
  private readonly softmaxMask: Float32Array;
  /** Maximal runs of consecutive tanh spans [start, end) and the softmax spans, for fewer ops. */
  private readonly segments: { kind: 'tanh' | 'softmax'; offset: number; dim: number }[];

  constructor(config: ModelConfig, spans: readonly OutputSpan[]) {
    this.config = parseModelConfig(config);
    validateSpans(spans);
    this.spans = spans.map((s) => ({ ...s }));
    this.condSpans = conditionalSpans(this.config, this.spans);
    this.labelSpan = classifierSpan(this.config, this.spans);
    this.dims = modelDims(this.config, this.spans);
    this.spec = modelSpec(this.config, this.spans);
    const id = ++modelCounter;
    const rng = new Rng(this.config.seed);
    for (const p of this.spec) {
      const data = initValues(p, rng);
      // tfjs variable names are process-global: prefix with a model id so several models coexist.
      const init = tf.tensor(data, p.shape);
      this.vars.set(p.name, tf.variable(init, p.trainable, `m${id}/${p.name}`));
      init.dispose();
    }
    this.sampleRng = new Rng((this.config.seed ^ 0x5bd1e995) >>> 0);
    this.softmaxMask = new Float32Array(this.dims.outputDim);
    const inv = new Float32Array(this.dims.outputDim).fill(1);
    this.segments = [];
    for (const s of this.spans) {
      if (s.kind === 'softmax') {
        this.softmaxMask.fill(1, s.offset, s.offset + s.dim);
        inv.fill(1 / this.config.gumbelTau, s.offset, s.offset + s.dim);
        this.segments.push({ kind: 'softmax', offset: s.offset, dim: s.dim });
      } else {
        const last = this.segments[this.segments.length - 1];
        if (last && last.kind === 'tanh' && last.offset + last.dim === s.offset) last.dim += s.dim;
        else this.segments.push({ kind: 'tanh', offset: s.offset, dim: s.dim });
      }
    }
    this.invTau = tf.keep(tf.tensor1d(inv));
  }

  get outputDim(): number {
    return this.dims.outputDim;
  }

  get condDim(): number {
    return this.dims.condDim;
  }

  /** The tf.Variable for a spec name (throws on an unknown name). */
  variable(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`model has no parameter '${name}'`);
    return v;
  }

  /** Trainable generator variables in spec order. */
  generatorVariables(): tf.Variable[] {
    return this.spec.filter((p) => p.trainable && p.name.startsWith('G/')).map((p) => this.variable(p.name));
  }

  /** Trainable discriminator variables in spec order. */
  discriminatorVariables(): tf.Variable[] {
    return this.spec.filter((p) => p.trainable && p.name.startsWith('D/')).map((p) => this.variable(p.name));
  }

  /** Spec names of the discriminator's trainable variables, in the order of discriminatorVariables(). */
  discriminatorParamNames(): string[] {
    return this.spec.filter((p) => p.trainable && p.name.startsWith('D/')).map((p) => p.name);
  }

  generatorParamNames(): string[] {
    return this.spec.filter((p) => p.trainable && p.name.startsWith('G/')).map((p) => p.name);
  }

  /** Trainable classifier variables in spec order (empty without a classifier). */
  classifierVariables(): tf.Variable[] {
    return this.classifierParamNames().map((n) => this.variable(n));
  }

  classifierParamNames(): string[] {
    return this.spec.filter((p) => p.trainable && p.name.startsWith('C/')).map((p) => p.name);
  }

  /** All weights (trainable and running statistics) in spec order, copied out (never aliasing a variable). */
  getWeights(): NamedTensor[] {
    this.assertAlive();
    return this.spec.map((p) => ({ name: p.name, shape: [...p.shape], data: (this.variable(p.name).dataSync() as Float32Array).slice() }));
  }

  /** Replaces all weights; names, order and shapes must match the spec exactly, values must be finite. */
  setWeights(weights: readonly NamedTensor[]): void {
    this.assertAlive();
    if (!Array.isArray(weights as unknown)) throw new Error('setWeights: expected an array of named tensors');
    if (weights.length !== this.spec.length) {
      const have = new Set(weights.map((w) => w?.name));
      const missing = this.spec.filter((p) => !have.has(p.name)).map((p) => p.name);
      throw new Error(`setWeights: expected ${this.spec.length} tensors, got ${weights.length}${missing.length ? ` (missing: ${missing.slice(0, 5).join(', ')})` : ''}`);
    }
    weights.forEach((w, i) => {
      const p = this.spec[i]!;
      validateNamedTensor(w, `setWeights[${i}]`);
      if (w.name !== p.name) throw new Error(`setWeights: tensor ${i} should be '${p.name}', got '${w.name}'`);
      if (w.shape.length !== p.shape.length || w.shape.some((d, j) => d !== p.shape[j])) {
        throw new Error(`setWeights: '${p.name}' should have shape [${p.shape.join(', ')}], got [${w.shape.join(', ')}]`);
      }
      for (let j = 0; j < w.data.length; j++) {
        if (!Number.isFinite(w.data[j]!)) throw new Error(`setWeights: '${p.name}' has a non-finite value at index ${j}`);
      }
      if (!p.trainable && p.name.endsWith('movingVar') && w.data.some((x) => x < 0)) {
        throw new Error(`setWeights: '${p.name}' is a variance and must be non-negative`);
      }
    });
    // Validate everything before assigning anything: no half-applied weights.
    weights.forEach((w, i) => {
      const p = this.spec[i]!;
      tf.tidy(() => this.variable(p.name).assign(tf.tensor(w.data, p.shape)));
    });
  }

  /**
   * Replaces the classifier C's weights only: `weights` must hold exactly C's tensors
   * (classifierParamNames), in any order, with C's shapes and finite values. Used by a bank to
   * score its rows with the published C (label calibration) without touching G or D.
   */
  setClassifierWeights(weights: readonly NamedTensor[]): void {
    this.assertAlive();
    const names = this.classifierParamNames();
    if (names.length === 0) throw new Error('setClassifierWeights: this model has no classifier');
    if (!Array.isArray(weights as unknown) || weights.length !== names.length) {
      throw new Error(`setClassifierWeights: expected C's ${names.length} tensors (${names.join(', ')}), got ${Array.isArray(weights as unknown) ? weights.length : 'no list'}`);
    }
    const byName = new Map(weights.map((w) => [w?.name, w]));
    const ordered = names.map((name) => {
      const w = byName.get(name);
      if (!w) throw new Error(`setClassifierWeights: '${name}' is missing`);
      const p = this.spec.find((s) => s.name === name)!;
      validateNamedTensor(w, `setClassifierWeights '${name}'`);
      if (w.shape.length !== p.shape.length || w.shape.some((d, j) => d !== p.shape[j])) {
        throw new Error(`setClassifierWeights: '${name}' should have shape [${p.shape.join(', ')}], got [${w.shape.join(', ')}]`);
      }
      for (let j = 0; j < w.data.length; j++) if (!Number.isFinite(w.data[j]!)) throw new Error(`setClassifierWeights: '${name}' has a non-finite value at index ${j}`);
      return { w, p };
    });
    for (const { w, p } of ordered) tf.tidy(() => this.variable(p.name).assign(tf.tensor(w.data, p.shape)));
  }

  /**
   * Generator forward. `gumbel` ([rows, outputDim] standard Gumbel noise, 0 where unused) turns the
   * softmax spans into Gumbel-softmax samples; without it they are plain softmax.
   * training=true uses batch statistics in the CTGAN blocks (and reports them in bnStats).
   */
  generatorForward(noise: tf.Tensor2D, cond: tf.Tensor2D | null, training: boolean, gumbel?: tf.Tensor2D): GeneratorOutput {
    const cfg = this.config;
    let h: tf.Tensor2D = cond && this.condDim > 0 ? tf.concat([noise, cond], 1) : noise;
    const bnStats: GeneratorOutput['bnStats'] = [];
    cfg.generatorDims.forEach((_, i) => {
      const z = linear(h, this.variable(`G/${i}/kernel`), this.variable(`G/${i}/bias`));
      if (cfg.architecture === 'ctgan') {
        let mean: tf.Tensor1D;
        let variance: tf.Tensor1D;
        if (training) {
          const m = tf.moments(z, 0);
          mean = m.mean as tf.Tensor1D;
          variance = m.variance as tf.Tensor1D;
          bnStats.push({ index: i, mean, variance });
        } else {
          mean = this.variable(`G/${i}/bn/movingMean`) as unknown as tf.Tensor1D;
          variance = this.variable(`G/${i}/bn/movingVar`) as unknown as tf.Tensor1D;
        }
        const norm = tf.mul(tf.sub(z, mean), tf.rsqrt(tf.add(variance, BN_EPS)));
        const bn = tf.add(tf.mul(norm, this.variable(`G/${i}/bn/gamma`)), this.variable(`G/${i}/bn/beta`));
        // CTGAN Residual: cat([ReLU(BN(Linear(x))), x]).
        h = tf.concat([tf.relu(bn) as tf.Tensor2D, h], 1);
      } else {
        h = tf.relu(z) as tf.Tensor2D;
      }
    });
    const raw = linear(h, this.variable('G/out/kernel'), this.variable('G/out/bias'));
    const pre = gumbel ? tf.mul(tf.add(raw, gumbel), this.invTau) : tf.mul(raw, this.invTau);
    const parts = this.segments.map((s) => {
      const x = tf.slice(pre, [0, s.offset], [-1, s.dim]);
      return s.kind === 'tanh' ? tf.tanh(x) : tf.softmax(x);
    });
    const activated = (parts.length === 1 ? parts[0]! : tf.concat(parts, 1)) as tf.Tensor2D;
    return { raw, activated, bnStats };
  }

  /** Standard Gumbel noise in softmax columns (zeros elsewhere), [rows, outputDim]. */
  gumbelNoise(rows: number, rng: Rng): tf.Tensor2D {
    const d = this.outputDim;
    const g = new Float32Array(rows * d);
    const mask = this.softmaxMask;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      for (let j = 0; j < d; j++) if (mask[j]) g[o + j] = -Math.log(-Math.log(rng.nextOpen()));
    }
    return tf.tensor2d(g, [rows, d]);
  }

  /** Rows ⊕ cond, packed: [rows, outputDim(+condDim)] → [rows/pac, pac·(outputDim+condDim)]. */
  packInput(rows: tf.Tensor2D, cond: tf.Tensor2D | null): tf.Tensor2D {
    const x = cond && this.condDim > 0 ? tf.concat([rows, cond], 1) : rows;
    const n = x.shape[0];
    const pac = this.config.pac;
    if (n % pac !== 0) throw new Error(`discriminator input: ${n} rows is not a multiple of pac=${pac}`);
    return pac === 1 ? x : tf.reshape(x, [n / pac, pac * x.shape[1]]);
  }

  /**
   * Discriminator forward on packed rows. In training, dropout masks are drawn from `rng`.
   * Leaky ReLU is algebraic (see layers.ts) so WGAN-GP can differentiate twice.
   */
  discriminatorForward(x: tf.Tensor2D, training: boolean, rng?: Rng): DiscriminatorOutput {
    const cfg = this.config;
    if (x.shape[1] !== this.dims.discInputDim) {
      throw new Error(`discriminator input has ${x.shape[1]} columns, expected ${this.dims.discInputDim}`);
    }
    const layers: DLayerTrace[] = [];
    let a = x;
    cfg.discriminatorDims.forEach((h, i) => {
      const z = linear(a, this.variable(`D/${i}/kernel`), this.variable(`D/${i}/bias`));
      let out = leakyRelu(z, cfg.leakySlope) as tf.Tensor2D;
      const trace: DLayerTrace = { name: `D/${i}`, a, z };
      if (training && cfg.dropout > 0) {
        if (!rng) throw new Error('discriminatorForward: training with dropout needs an rng');
        const mask = tf.tensor2d(rng.dropoutMask(z.shape[0] * h, cfg.dropout), [z.shape[0], h]);
        trace.dropoutMask = mask;
        out = tf.mul(out, mask);
      }
      layers.push(trace);
      a = out;
    });
    const logits = linear(a, this.variable('D/out/kernel'), this.variable('D/out/bias'));
    layers.push({ name: 'D/out', a, z: logits });
    return { logits, layers };
  }

  /**
   * Classifier forward on unpacked rows [n, outputDim] (real, or generated and activated): the
   * label's span is cut out, then LeakyReLU MLP → label logits [n, label dim]. Layers are traced
   * like D's (no dropout), so DP-SGD clips C's per-example gradients the same way.
   */
  classifierForward(rows: tf.Tensor2D): DiscriminatorOutput {
    const label = this.labelSpan;
    if (!label) throw new Error('classifierForward: this model has no classifier (config.classifierColumn is null)');
    if (rows.shape[1] !== this.outputDim) throw new Error(`classifier input has ${rows.shape[1]} columns, expected ${this.outputDim}`);
    const parts: tf.Tensor2D[] = [];
    if (label.offset > 0) parts.push(tf.slice(rows, [0, 0], [-1, label.offset]));
    const after = label.offset + label.dim;
    if (after < this.outputDim) parts.push(tf.slice(rows, [0, after], [-1, this.outputDim - after]));
    let a = (parts.length === 1 ? parts[0]! : tf.concat(parts, 1)) as tf.Tensor2D;
    // ModelConfig.classifierScalarScale: the numeric columns' scalars at the one-hots' scale.
    if (this.config.classifierScalarScale !== 1) a = tf.mul(a, this.classifierInputScale()) as tf.Tensor2D;
    const layers: DLayerTrace[] = [];
    this.config.classifierDims.forEach((_, i) => {
      const z = linear(a, this.variable(`C/${i}/kernel`), this.variable(`C/${i}/bias`));
      layers.push({ name: `C/${i}`, a, z });
      a = leakyRelu(z, this.config.leakySlope) as tf.Tensor2D;
    });
    const logits = linear(a, this.variable('C/out/kernel'), this.variable('C/out/bias'));
    layers.push({ name: 'C/out', a, z: logits });
    return { logits, layers };
  }

  /** Per column of C's input (the row without the label span): classifierScalarScale on tanh columns, 1 elsewhere. Made once, kept until dispose. */
  private classifierInputScale(): tf.Tensor1D {
    if (!this.cScale) {
      const label = this.labelSpan!;
      const scale: number[] = [];
      for (const s of this.spans) {
        if (s.offset === label.offset) continue;
        for (let j = 0; j < s.dim; j++) scale.push(s.kind === 'tanh' ? this.config.classifierScalarScale : 1);
      }
      this.cScale = tf.keep(tf.tensor1d(scale));
    }
    return this.cScale;
  }

  /**
   * C's class probabilities for encoded rows (n·outputDim values, e.g. generate()'s output) →
   * n·labelDim values, row-major. Used to label generated rows (shared/sampling).
   */
  classifierProbabilities(data: Float32Array, n: number): Float32Array {
    if (data.length !== n * this.outputDim) throw new Error(`classifierProbabilities: expected ${n}×${this.outputDim} values, got ${data.length}`);
    return tf.tidy(() => tf.softmax(this.classifierForward(tf.tensor2d(data, [n, this.outputDim])).logits).dataSync() as Float32Array);
  }

  /** The label span of rows [n, outputDim] (one-hot for real rows; Gumbel-softmax for generated ones). */
  labelOf(rows: tf.Tensor2D): tf.Tensor2D {
    const label = this.labelSpan;
    if (!label) throw new Error('labelOf: this model has no classifier');
    return tf.slice(rows, [0, label.offset], [-1, label.dim]);
  }

  /** Moves the CTGAN running statistics towards a batch's (PyTorch BatchNorm1d semantics). */
  updateRunningStats(stats: GeneratorOutput['bnStats'], batchRows: number): void {
    if (stats.length === 0) return;
    const m = this.config.batchNormMomentum;
    const unbias = batchRows > 1 ? batchRows / (batchRows - 1) : 1;
    tf.tidy(() => {
      for (const s of stats) {
        const mm = this.variable(`G/${s.index}/bn/movingMean`);
        const mv = this.variable(`G/${s.index}/bn/movingVar`);
        mm.assign(tf.add(tf.mul(mm, 1 - m), tf.mul(s.mean, m)));
        mv.assign(tf.add(tf.mul(mv, 1 - m), tf.mul(s.variance, m * unbias)));
      }
    });
  }

  /** Parses a generate() cond request into n·condDim values (or throws naming what is wrong). */
  condRows(n: number, opts: GenerateOptions, rng: Rng): Float32Array {
    const cd = this.condDim;
    const out = new Float32Array(n * cd);
    if (cd === 0) {
      if (opts.cond !== undefined) throw new Error('generate: this model has no conditional columns, so cond is not allowed');
      return out;
    }
    const c = opts.cond;
    if (c instanceof Float32Array) {
      if (c.length === cd) {
        for (let r = 0; r < n; r++) out.set(c, r * cd);
      } else if (c.length === n * cd) {
        out.set(c);
      } else {
        throw new Error(`generate: cond has ${c.length} values; expected ${cd} (one vector) or ${n * cd} (n × condDim)`);
      }
      return out;
    }
    if (c !== undefined) {
      let k: number;
      if ('column' in c) {
        k = this.condSpans.findIndex((s) => s.column === c.column);
        if (k < 0) throw new Error(`generate: '${c.column}' is not a conditional column (have: ${this.condSpans.map((s) => s.column).join(', ')})`);
      } else {
        k = c.span;
        if (!Number.isInteger(k) || k < 0 || k >= this.condSpans.length) {
          throw new Error(`generate: cond span ${k} out of range [0, ${this.condSpans.length})`);
        }
      }
      const s = this.condSpans[k]!;
      if (!Number.isInteger(c.category) || c.category < 0 || c.category >= s.dim) {
        throw new Error(`generate: category ${c.category} out of range for '${s.column}' (${s.dim} categories)`);
      }
      for (let r = 0; r < n; r++) out[r * cd + s.condOffset + c.category] = 1;
      return out;
    }
    if (!opts.categoryFrequencies) {
      throw new Error('generate: this model is conditional; pass cond or categoryFrequencies (per conditional column category weights)');
    }
    const cdfs = categoryCdfs(this.condSpans, opts.categoryFrequencies, (x) => x, 'generate');
    const usable = cdfs.map((cdf, k) => (cdf ? k : -1)).filter((k) => k >= 0);
    for (let r = 0; r < n; r++) {
      const k = usable[rng.int(usable.length)]!;
      const j = drawFromCdf(cdfs[k]!, rng.next());
      out[r * cd + this.condSpans[k]!.condOffset + j] = 1;
    }
    return out;
  }

  /**
   * n synthetic rows in the transformer's encoding (row-major n × outputDim): tanh spans in
   * [-1, 1], softmax spans one-hot (a categorical draw from the generator's softmax, i.e. the
   * argmax of the Gumbel-softmax used in training). Uses running statistics in CTGAN blocks.
   */
  generate(n: number, opts: GenerateOptions = {}): Float32Array {
    this.assertAlive();
    if (!Number.isInteger(n) || n < 0) throw new Error(`generate: n must be a non-negative integer, got ${n}`);
    const bs = opts.batchSize ?? 1000;
    if (!Number.isInteger(bs) || bs < 1) throw new Error(`generate: batchSize must be a positive integer, got ${bs}`);
    const rng = opts.seed !== undefined ? new Rng(opts.seed) : this.sampleRng;
    const d = this.outputDim;
    const cd = this.condDim;
    const cond = this.condRows(n, opts, rng);
    const out = new Float32Array(n * d);
    const skip = excludedCategorySets(this.spans, opts.excluded, 'generate');
    for (let start = 0; start < n; start += bs) {
      const rows = Math.min(bs, n - start);
      const raw = tf.tidy(() => {
        const noise = tf.tensor2d(rng.normal(rows * this.config.noiseDim), [rows, this.config.noiseDim]);
        const c = cd > 0 ? tf.tensor2d(cond.subarray(start * cd, (start + rows) * cd), [rows, cd]) : null;
        return this.generatorForward(noise, c, false).raw;
      });
      const vals = raw.dataSync() as Float32Array;
      raw.dispose();
      for (let r = 0; r < rows; r++) {
        const src = r * d;
        const dst = (start + r) * d;
        for (const s of this.spans) {
          if (s.kind === 'tanh') {
            for (let j = 0; j < s.dim; j++) out[dst + s.offset + j] = Math.tanh(vals[src + s.offset + j]!);
          } else {
            // Gumbel-max: argmax(logit + Gumbel) is an exact draw from softmax(logit), and over a
            // subset of categories an exact draw from the softmax renormalised over that subset.
            const no = skip.get(s.offset);
            let best = 0;
            let bestV = -Infinity;
            for (let j = 0; j < s.dim; j++) {
              const g = -Math.log(-Math.log(rng.nextOpen()));
              if (no?.has(j)) continue;
              const v = vals[src + s.offset + j]! + g;
              if (v > bestV) {
                bestV = v;
                best = j;
              }
            }
            out[dst + s.offset + best] = 1;
          }
        }
      }
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
    this.invTau.dispose();
    this.cScale?.dispose();
  }

  private assertAlive(): void {
    if (this.disposed) throw new Error('model has been disposed');
  }
}

/** Builds a model with seeded initial weights (same config.seed → same weights). */
export function createModel(config: ModelConfig, spans: readonly OutputSpan[]): GanModel {
  return new GanModel(config, spans);
}

/** He-uniform for layers followed by (leaky) ReLU, Glorot-uniform for output layers (He et al. 2015; Glorot & Bengio 2010). */
function initValues(p: ParamSpec, rng: Rng): Float32Array {
  const n = sizeOf(p.shape);
  switch (p.init) {
    case 'zeros':
      return new Float32Array(n);
    case 'ones':
      return new Float32Array(n).fill(1);
    case 'he': {
      const lim = Math.sqrt(6 / p.shape[0]!);
      return rng.uniform(n, -lim, lim);
    }
    case 'glorot': {
      const lim = Math.sqrt(6 / (p.shape[0]! + p.shape[1]!));
      return rng.uniform(n, -lim, lim);
    }
  }
}

/**
 * Categories to leave out (GenerateOptions.excluded, TrainerOptions.excludedCategories), checked
 * against the model's softmax spans and keyed by span offset. `where` prefixes the errors.
 */
export function excludedCategorySets(spans: readonly OutputSpan[], excluded: readonly { offset: number; categories: readonly number[] }[] | undefined, where: string): Map<number, Set<number>> {
  const skip = new Map<number, Set<number>>();
  for (const e of excluded ?? []) {
    const span = spans.find((sp) => sp.offset === e.offset && sp.kind === 'softmax');
    if (!span) throw new Error(`${where}: excluded categories name no softmax span at offset ${e.offset}`);
    if (e.categories.some((j) => !Number.isInteger(j) || j < 0 || j >= span.dim)) throw new Error(`${where}: excluded categories of '${span.column}' must be integers in [0, ${span.dim})`);
    if (e.categories.length >= span.dim) throw new Error(`${where}: every category of '${span.column}' is excluded`);
    skip.set(e.offset, new Set(e.categories));
  }
  return skip;
}

/**
 * Validates per-conditional-span category weights and turns each span into a CDF after `transform`
 * (identity for sampling, log(1+f) for training-by-sampling). A span whose weights are all zero
 * gets null (never drawn). Throws if no span is usable.
 */
export function categoryCdfs(
  condSpans: readonly CondSpan[],
  freqs: readonly (readonly number[])[],
  transform: (f: number) => number,
  where: string,
  allowed?: (k: number, j: number) => boolean,
): (Float64Array | null)[] {
  if (!Array.isArray(freqs) || freqs.length !== condSpans.length) {
    throw new Error(`${where}: categoryFrequencies needs one array per conditional column (${condSpans.length}: ${condSpans.map((s) => s.column).join(', ')}), got ${Array.isArray(freqs) ? freqs.length : typeof freqs}`);
  }
  const cdfs = condSpans.map((s, k) => {
    const f = freqs[k]!;
    if (!Array.isArray(f) || f.length !== s.dim) {
      throw new Error(`${where}: categoryFrequencies[${k}] ('${s.column}') must have ${s.dim} entries, got ${Array.isArray(f) ? f.length : typeof f}`);
    }
    const cdf = new Float64Array(s.dim);
    let acc = 0;
    for (let j = 0; j < s.dim; j++) {
      const v = f[j]!;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new Error(`${where}: categoryFrequencies[${k}][${j}] ('${s.column}') must be a finite non-negative number, got ${v}`);
      }
      if (!allowed || allowed(k, j)) acc += transform(v);
      cdf[j] = acc;
    }
    if (acc <= 0) return null;
    for (let j = 0; j < s.dim; j++) cdf[j]! /= acc;
    return cdf;
  });
  if (cdfs.every((c) => c === null)) throw new Error(`${where}: every conditional column has zero total category weight`);
  return cdfs;
}

export function drawFromCdf(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (u < cdf[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
