import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../shared/tensor/backend';
import { fastGradientsRegistered, registerFastGradients, restoreStockGradients } from '../../shared/tensor/fast-gradients';
import { Rng } from '../../shared/tensor/random';

const rng = new Rng(7);
const rand = (shape: number[]) => tf.tensor(rng.normal(shape.reduce((a, b) => a * b, 1)), shape);

/** Gradients of sum(w ⊙ matMul(a, b, tA, tB)) w.r.t. a and b (w makes dy non-uniform). */
function grads(a: tf.Tensor, b: tf.Tensor, w: tf.Tensor, tA: boolean, tB: boolean): [Float32Array, Float32Array] {
  const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, tA, tB), w)))([a, b]);
  const out: [Float32Array, Float32Array] = [ga!.dataSync() as Float32Array, gb!.dataSync() as Float32Array];
  ga!.dispose();
  gb!.dispose();
  return out;
}

function withStock<T>(f: () => T): T {
  restoreStockGradients();
  try {
    return f();
  } finally {
    registerFastGradients();
  }
}

function expectClose(x: Float32Array, y: Float32Array, tol = 1e-4): void {
  expect(x.length).toBe(y.length);
  let maxErr = 0;
  let maxAbs = 0;
  for (let i = 0; i < x.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(x[i]! - y[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(y[i]!));
  }
  expect(maxErr).toBeLessThanOrEqual(tol * Math.max(1, maxAbs));
}

describe('fast BatchMatMul gradient', () => {
  beforeAll(async () => {
    await selectBackend({ force: 'wasm', log: () => {} });
  });
  afterAll(() => registerFastGradients());

  it('is active after selectBackend', () => {
    expect(fastGradientsRegistered()).toBe(true);
  });

  const cases: [boolean, boolean][] = [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ];
  for (const [tA, tB] of cases) {
    it(`matches the stock gradient for transposeA=${tA} transposeB=${tB} (2-D and batched 3-D)`, () => {
      for (const batch of [[], [3]]) {
        const [m, k, n] = [5, 7, 4];
        const a = rand([...batch, ...(tA ? [k, m] : [m, k])]);
        const b = rand([...batch, ...(tB ? [n, k] : [k, n])]);
        const w = rand([...batch, m, n]);
        const fast = grads(a, b, w, tA, tB);
        const stock = withStock(() => grads(a, b, w, tA, tB));
        expectClose(fast[0], stock[0]);
        expectClose(fast[1], stock[1]);
        tf.dispose([a, b, w]);
      }
    });
  }

  it('matches the stock second-order gradient (as WGAN-GP needs)', () => {
    const x = rand([6, 5]);
    const w1 = rand([5, 8]);
    const w2 = rand([8, 1]);
    // d/dw1 of ||d/dx sum(tanh(x·w1)·w2)||²
    const secondOrder = (): Float32Array =>
      tf.tidy(() => {
        const g = tf.grad((w: tf.Tensor) => {
          const gx = tf.grad((xx: tf.Tensor) => tf.sum(tf.matMul(tf.tanh(tf.matMul(xx as tf.Tensor2D, w as tf.Tensor2D)), w2 as tf.Tensor2D)))(x);
          return tf.sum(tf.square(gx));
        })(w1);
        return g.dataSync() as Float32Array;
      });
    const fast = secondOrder();
    const stock = withStock(secondOrder);
    expect(fast.some((v) => v !== 0)).toBe(true);
    expectClose(fast, stock);
    tf.dispose([x, w1, w2]);
  });

  it('registering twice is a no-op, and restore puts the stock gradient back', () => {
    expect(registerFastGradients()).toBe(false);
    restoreStockGradients();
    expect(fastGradientsRegistered()).toBe(false);
    expect(registerFastGradients()).toBe(true);
    expect(fastGradientsRegistered()).toBe(true);
  });
});
