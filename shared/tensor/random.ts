// Seeded pseudo-random numbers filled straight into Float32Arrays. JS-side random numbers were ~12%
// of a wasm training step with tfjs's own seeded generators (seedrandom alea per element); this
// uses mulberry32 (a 32-bit state mixer) and Box-Muller, several times cheaper, and reproducible.
// Not cryptographic: privacy noise must come from shared/privacy, never from here.

export class Rng {
  private s: number;
  private spare: number | undefined;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    // Mix the seed so nearby seeds (1, 2, 3) give unrelated streams.
    this.s = (Math.imul((Math.floor(seed) ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in (0, 1): safe for log(). */
  nextOpen(): number {
    let u = this.next();
    while (u === 0) u = this.next();
    return u;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Shuffles `a` in place (Fisher–Yates, from the end: one int(i + 1) draw per position) and returns it. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }

  /** A fresh 31-bit seed (for deriving independent streams). */
  seed(): number {
    return Math.floor(this.next() * 0x7fffffff);
  }

  uniform(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    const w = hi - lo;
    for (let i = 0; i < n; i++) out[i] = lo + w * this.next();
    return out;
  }

  normal(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    let i = 0;
    if (this.spare !== undefined && n > 0) {
      out[i++] = mean + std * this.spare;
      this.spare = undefined;
    }
    for (; i + 1 < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.nextOpen()));
      const th = 2 * Math.PI * this.next();
      out[i] = mean + std * r * Math.cos(th);
      out[i + 1] = mean + std * r * Math.sin(th);
    }
    if (i < n) {
      const r = Math.sqrt(-2 * Math.log(this.nextOpen()));
      const th = 2 * Math.PI * this.next();
      out[i] = mean + std * r * Math.cos(th);
      this.spare = r * Math.sin(th);
    }
    return out;
  }

  /** Inverted-dropout mask: 0 with probability p, else 1/(1-p) (keeps the expectation). */
  dropoutMask(n: number, p: number): Float32Array {
    const out = new Float32Array(n);
    const keep = 1 / (1 - p);
    for (let i = 0; i < n; i++) out[i] = this.next() >= p ? keep : 0;
    return out;
  }

  /** Standard Gumbel(0, 1) noise: -log(-log U). */
  gumbel(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = -Math.log(-Math.log(this.nextOpen()));
    return out;
  }
}
