// Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient, exactly as PyTorch's
// torch.optim.Adam(weight_decay=…) that CTGAN uses. Moment estimates live in tensors owned here;
// reset() forgets them (e.g. at the start of each federated round).
import * as tf from '@tensorflow/tfjs';

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class Adam {
  private m: tf.Tensor[] | null = null;
  private v: tf.Tensor[] | null = null;
  private t = 0;

  constructor(
    private readonly vars: readonly tf.Variable[],
    readonly opts: AdamOptions,
  ) {
    for (const [k, x] of Object.entries(opts)) {
      if (!Number.isFinite(x) || x < 0) throw new Error(`Adam: option '${k}' must be a finite non-negative number, got ${x}`);
    }
    if (opts.beta1 >= 1 || opts.beta2 >= 1) throw new Error('Adam: beta1 and beta2 must be < 1');
  }

  get stepCount(): number {
    return this.t;
  }

  /** One update from gradients in the same order as the variables. Does not dispose `grads`. */
  apply(grads: readonly tf.Tensor[]): void {
    if (grads.length !== this.vars.length) throw new Error(`Adam: got ${grads.length} gradients for ${this.vars.length} variables`);
    const { lr, beta1, beta2, eps, weightDecay } = this.opts;
    if (!this.m || !this.v) {
      this.m = this.vars.map((x) => tf.keep(tf.zerosLike(x)));
      this.v = this.vars.map((x) => tf.keep(tf.zerosLike(x)));
    }
    this.t++;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    const stepSize = lr / bc1;
    const invSqrtBc2 = 1 / Math.sqrt(bc2);
    const m = this.m;
    const v = this.v;
    tf.tidy(() => {
      this.vars.forEach((w, i) => {
        const gi = grads[i]!;
        if (gi.size !== w.size) throw new Error(`Adam: gradient ${i} has ${gi.size} values for variable '${w.name}' of ${w.size}`);
        const g = weightDecay > 0 ? tf.add(gi, tf.mul(w, weightDecay)) : gi;
        const mNew = tf.keep(tf.add(tf.mul(m[i]!, beta1), tf.mul(g, 1 - beta1)));
        const vNew = tf.keep(tf.add(tf.mul(v[i]!, beta2), tf.mul(tf.square(g), 1 - beta2)));
        m[i]!.dispose();
        v[i]!.dispose();
        m[i] = mNew;
        v[i] = vNew;
        // PyTorch: w -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps)
        const denom = tf.add(tf.mul(tf.sqrt(vNew), invSqrtBc2), eps);
        w.assign(tf.sub(w, tf.mul(tf.div(mNew, denom), stepSize)));
      });
    });
  }

  reset(): void {
    this.m?.forEach((x) => x.dispose());
    this.v?.forEach((x) => x.dispose());
    this.m = null;
    this.v = null;
    this.t = 0;
  }

  dispose(): void {
    this.reset();
  }
}
