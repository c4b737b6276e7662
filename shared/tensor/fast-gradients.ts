// Replaces tfjs's BatchMatMul gradient with one that uses explicit transposes and plain matMuls.
// The stock gradient calls matMul with transposeA/transposeB, which on the wasm backend runs ~13x
// slower than an untransposed matMul of the same size; a transpose is a cheap copy, so
// transpose + plain matMul made a CTGAN-sized training iteration ~4x faster. The maths is the same
// (for C = op(A)·op(B): dA and dB as in the stock gradient), so results agree to float rounding.
// Only raw tf.matMul goes through this: tf.fused.matMul (used by tf.layers Dense) has its own
// gradient, which is why the networks in shared/model are built from tf.variable + tf.matMul.
import * as tf from '@tensorflow/tfjs';

/** Swaps the last two axes (works for rank 2 and batched rank-3+ matrices). */
function t(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  if (r < 2) throw new Error(`fast BatchMatMul gradient: expected a matrix of rank >= 2, got rank ${r}`);
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return tf.transpose(x, perm);
}

const mm = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.matMul(a, b, false, false);

/**
 * C = op(A)·op(B). With G = dL/dC:
 *   A, B          : dA = G·Bᵀ,       dB = Aᵀ·G
 *   A, Bᵀ         : dA = G·B,        dB = Gᵀ·A
 *   Aᵀ, B         : dA = B·Gᵀ,       dB = A·G
 *   Aᵀ, Bᵀ        : dA = Bᵀ·Gᵀ,      dB = Gᵀ·Aᵀ
 * Each built from plain matMuls, so it is itself differentiable (second-order gradients for
 * WGAN-GP go through this function too).
 */
export const fastBatchMatMulGradConfig: tf.GradConfig = {
  kernelName: tf.BatchMatMul,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved as [tf.Tensor, tf.Tensor];
    const g = dy as tf.Tensor;
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return { a: () => mm(g, t(b)), b: () => mm(t(a), g) };
    if (!transposeA && transposeB) return { a: () => mm(g, b), b: () => mm(t(g), a) };
    if (transposeA && !transposeB) return { a: () => mm(b, t(g)), b: () => mm(a, g) };
    return { a: () => mm(t(b), t(g)), b: () => mm(t(g), t(a)) };
  },
};

let stock: tf.GradConfig | undefined;

/** Registers the fast gradient (idempotent). Returns true if it was not active before this call. */
export function registerFastGradients(): boolean {
  const current = tf.getGradient(tf.BatchMatMul);
  if (current === fastBatchMatMulGradConfig) return false;
  stock = current;
  tf.registerGradient(fastBatchMatMulGradConfig);
  return true;
}

/** Puts tfjs's own BatchMatMul gradient back (tests compare the two). */
export function restoreStockGradients(): void {
  if (stock && tf.getGradient(tf.BatchMatMul) === fastBatchMatMulGradConfig) tf.registerGradient(stock);
}

export function fastGradientsRegistered(): boolean {
  return tf.getGradient(tf.BatchMatMul) === fastBatchMatMulGradConfig;
}
