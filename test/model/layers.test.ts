import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { leakyRelu, softplus } from '../../shared/model/layers';
import { selectBackend } from '../../shared/tensor/backend';

describe('algebraic leaky ReLU', () => {
  beforeAll(async () => {
    await selectBackend({ force: 'wasm', log: () => {} });
  });
  const xs = [-3, -1, -0.25, -1e-3, 0, 1e-3, 0.5, 2, 7];

  for (const slope of [0.2, 0.01, 0.5]) {
    it(`equals max(x, ${slope}·x) and has its gradient`, () => {
      const x = tf.tensor1d(xs);
      const y = leakyRelu(x, slope).arraySync() as number[];
      y.forEach((v, i) => expect(v).toBeCloseTo(Math.max(xs[i]!, slope * xs[i]!), 6));
      const g = tf.grad((t: tf.Tensor) => tf.sum(leakyRelu(t, slope)))(x).arraySync() as number[];
      g.forEach((v, i) => {
        if (xs[i] !== 0) expect(v).toBeCloseTo(xs[i]! > 0 ? 1 : slope, 6);
      });
      x.dispose();
    });
  }

  it('supports second-order gradients (WGAN-GP): d/dw ‖d/dx f(x; w)‖² is finite and correct', () => {
    // f(x; w) = sum(leaky(w·x)) with x = [2, -3]: df/dx_i = w·(1 if w·x_i > 0 else s),
    // so ‖∇x f‖² = w²(1 + s²) for w > 0 and its derivative in w is 2w(1 + s²).
    const s = 0.2;
    const x = tf.tensor1d([2, -3]);
    const w = tf.scalar(1.5);
    const d = tf.grad((ww: tf.Tensor) => {
      const gx = tf.grad((xx: tf.Tensor) => tf.sum(leakyRelu(tf.mul(ww, xx), s)))(x);
      return tf.sum(tf.square(gx));
    })(w);
    expect(d.dataSync()[0]).toBeCloseTo(2 * 1.5 * (1 + s * s), 4);
    tf.dispose([x, w, d]);
  });

  it('softplus is log(1 + e^x) without overflow', () => {
    const v = softplus(tf.tensor1d([-100, -1, 0, 1, 100])).dataSync();
    expect(v[0]).toBeCloseTo(0, 6);
    expect(v[1]).toBeCloseTo(Math.log1p(Math.exp(-1)), 5);
    expect(v[2]).toBeCloseTo(Math.LN2, 6);
    expect(v[4]).toBeCloseTo(100, 4);
  });
});
