import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelConfig, type OutputSpan } from '../../shared/model/config';
import { createModel, type GanModel } from '../../shared/model/model';
import { modelSpec } from '../../shared/model/spec';
import { selectBackend } from '../../shared/tensor/backend';
import { cloneTensors, flatten } from '../../shared/tensor/named';

const spans: OutputSpan[] = [
  { column: 'x', kind: 'tanh', dim: 1, offset: 0 },
  { column: 'x', kind: 'softmax', dim: 3, offset: 1 },
  { column: 'c', kind: 'softmax', dim: 4, offset: 4 },
];
// outputDim 8, condDim 4 (only 'c': 'x' is continuous)
const small = { noiseDim: 5, generatorDims: [6, 7], discriminatorDims: [9, 3] };

describe('model spec', () => {
  it('names and shapes the mlp parameters deterministically, G before D', () => {
    const spec = modelSpec(defaultModelConfig({ ...small, pac: 2 }), spans);
    expect(spec.map((p) => `${p.name}:${p.shape.join('x')}`)).toEqual([
      'G/0/kernel:9x6', 'G/0/bias:6', 'G/1/kernel:6x7', 'G/1/bias:7', 'G/out/kernel:7x8', 'G/out/bias:8',
      // D input: pac · (outputDim + condDim) = 2 · 12
      'D/0/kernel:24x9', 'D/0/bias:9', 'D/1/kernel:9x3', 'D/1/bias:3', 'D/out/kernel:3x1', 'D/out/bias:1',
    ]);
    expect(spec.every((p) => p.trainable)).toBe(true);
  });

  it('ctgan residual blocks widen the generator input and carry non-trainable BN statistics', () => {
    const spec = modelSpec(defaultModelConfig({ ...small, architecture: 'ctgan' }), spans);
    const byName = new Map(spec.map((p) => [p.name, p]));
    expect(byName.get('G/0/kernel')!.shape).toEqual([9, 6]);
    expect(byName.get('G/1/kernel')!.shape).toEqual([9 + 6, 7]);
    expect(byName.get('G/out/kernel')!.shape).toEqual([9 + 6 + 7, 8]);
    expect(byName.get('D/0/kernel')!.shape).toEqual([10 * 12, 9]);
    expect(byName.get('G/1/bn/movingVar')!.trainable).toBe(false);
    expect(byName.get('G/1/bn/gamma')!.trainable).toBe(true);
    expect(spec.some((p) => p.name.startsWith('D/') && p.name.includes('bn'))).toBe(false);
  });
});

describe('weights', () => {
  let models: GanModel[] = [];
  const make = (seed: number, arch: 'mlp' | 'ctgan' = 'mlp'): GanModel => {
    const m = createModel(defaultModelConfig({ ...small, architecture: arch, seed }), spans);
    models.push(m);
    return m;
  };
  beforeAll(async () => {
    await selectBackend({ force: 'wasm', log: () => {} });
  });
  afterEach(() => {
    models.forEach((m) => m.dispose());
    models = [];
  });

  it('same seed gives identical weights, another seed different ones', () => {
    const a = flatten(make(1).getWeights());
    const b = flatten(make(1).getWeights());
    const c = flatten(make(2).getWeights());
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('initialises kernels within the He/Glorot bounds, biases 0, BN gamma 1 and variance 1', () => {
    const w = make(3, 'ctgan').getWeights();
    const get = (n: string) => w.find((t) => t.name === n)!;
    const k = get('G/0/kernel');
    const lim = Math.sqrt(6 / k.shape[0]!);
    expect(k.data.every((v) => Math.abs(v) <= lim)).toBe(true);
    expect(Math.max(...k.data.map(Math.abs))).toBeGreaterThan(lim / 2);
    expect(get('G/0/bias').data.every((v) => v === 0)).toBe(true);
    expect(get('G/0/bn/gamma').data.every((v) => v === 1)).toBe(true);
    expect(get('G/1/bn/movingVar').data.every((v) => v === 1)).toBe(true);
  });

  it('round-trips through getWeights/setWeights', () => {
    const a = make(1, 'ctgan');
    const b = make(2, 'ctgan');
    b.setWeights(a.getWeights());
    expect(Array.from(flatten(b.getWeights()))).toEqual(Array.from(flatten(a.getWeights())));
    // and the models then compute the same thing
    const ga = a.generate(20, { seed: 9, cond: { column: 'c', category: 1 } });
    const gb = b.generate(20, { seed: 9, cond: { column: 'c', category: 1 } });
    expect(Array.from(gb)).toEqual(Array.from(ga));
  });

  it('rejects bad weights with specific errors and leaves the model unchanged', () => {
    const m = make(1);
    const before = flatten(m.getWeights());
    const w = m.getWeights();
    expect(() => m.setWeights(w.slice(1))).toThrow(/expected 12 tensors, got 11 \(missing: G\/0\/kernel\)/);
    const renamed = cloneTensors(w);
    renamed[2]!.name = 'G/9/kernel';
    expect(() => m.setWeights(renamed)).toThrow(/tensor 2 should be 'G\/1\/kernel', got 'G\/9\/kernel'/);
    const reshaped = cloneTensors(w);
    reshaped[0] = { name: 'G/0/kernel', shape: [6, 9], data: reshaped[0]!.data };
    expect(() => m.setWeights(reshaped)).toThrow(/'G\/0\/kernel' should have shape \[9, 6\], got \[6, 9\]/);
    const short = cloneTensors(w);
    short[1] = { name: 'G/0/bias', shape: [6], data: new Float32Array(5) };
    expect(() => m.setWeights(short)).toThrow(/5 values but shape \[6\] needs 6/);
    const nan = cloneTensors(w);
    nan[11]!.data[0] = NaN;
    // a valid tensor earlier in the list must not be applied when a later one is bad
    nan[0]!.data.fill(0.123);
    expect(() => m.setWeights(nan)).toThrow(/'D\/out\/bias' has a non-finite value at index 0/);
    expect(Array.from(flatten(m.getWeights()))).toEqual(Array.from(before));
  });

  it('allocates no tensors beyond its variables and frees them on dispose', () => {
    const start = tf.memory().numTensors;
    const m = createModel(defaultModelConfig({ ...small, architecture: 'ctgan' }), spans);
    m.generate(50, { cond: { span: 0, category: 2 } });
    m.getWeights();
    expect(tf.memory().numTensors - start).toBe(m.spec.length + 1); // + the Gumbel temperature vector
    m.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
