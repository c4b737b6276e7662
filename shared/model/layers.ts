// Differentiable building blocks made only of ops whose gradients are fast on wasm and are
// themselves differentiable (WGAN-GP needs second-order gradients).
import * as tf from '@tensorflow/tfjs';

/**
 * Leaky ReLU as max(x, s·x) = ((1+s)/2)·x + ((1-s)/2)·|x| for 0 <= s <= 1
 * (x >= 0: (1+s)/2·x + (1-s)/2·x = x;  x < 0: (1+s)/2·x - (1-s)/2·x = s·x).
 * tf.leakyRelu's gradient breaks second-order differentiation; abs's gradient is step(x)·dy,
 * which differentiates again (to zero), and the two elementwise ops are cheap.
 */
export function leakyRelu(x: tf.Tensor, slope: number): tf.Tensor {
  if (slope === 0) return tf.relu(x);
  return tf.add(tf.mul(x, (1 + slope) / 2), tf.mul(tf.abs(x), (1 - slope) / 2));
}

/** x·W + b with a plain matMul so the fast BatchMatMul gradient applies (not tf.fused). */
export function linear(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor): tf.Tensor2D {
  return tf.add(tf.matMul(x as tf.Tensor2D, kernel as tf.Tensor2D), bias) as tf.Tensor2D;
}

/** Mean cross-entropy of logits [n, k] against target distributions [n, k] (one-hot labels). */
export function labelCrossEntropy(logits: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.div(tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(logits)))), logits.shape[0]) as tf.Scalar);
}

/** softplus(x) = log(1 + e^x), computed stably as max(x, 0) + log(1 + e^-|x|). */
export function softplus(x: tf.Tensor): tf.Tensor {
  return tf.add(tf.relu(x), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
}
