// DP-SGD's noise for the NEXT step, drawn on a worker thread while this thread computes gradients.
//
// The Gaussian noise of a DP-SGD step does not depend on the data, so it can be drawn ahead of time.
// It was nearly the whole extra cost of a DP step on large discriminators (bench:privacy's
// "secure noise" column against its DP-step overhead). A worker fills two slots of a SharedArrayBuffer with
// fillSecureSums (the same CSPRNG-driven, floating-point-hardened sampler as secureGaussian), and
// take(σ) scales a ready slot exactly as secureGaussian does. Each slot's state goes
// EMPTY → (worker fills) → READY → (take copies it out) → EMPTY, so every draw is used once
// and never reused. When no slot is ready, take() draws on this thread instead (never waits),
// and it draws there too if the worker could not start.
import { Worker } from 'node:worker_threads';
import { fillSecureSums, scaleSecureSums, secureGaussian, type CryptoRandom } from './secure-noise';

export const SLOT_EMPTY = 0;
export const SLOT_READY = 1;
export const SLOT_CLOSED = 2;
const SLOTS = 2;

export class SecureNoisePrefetcher {
  private readonly state: Int32Array;
  private readonly slots: Float64Array[];
  private next = 0;
  private worker: Worker | null;
  /** Draws served from the worker / drawn on this thread (diagnostics and tests). */
  readonly served = { prefetched: 0, inline: 0 };

  /** n: values per draw (the discriminator's parameter count). */
  constructor(readonly n: number, private readonly inlineRng?: CryptoRandom) {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`noise prefetch: n must be an integer ≥ 1, got ${String(n)}`);
    const stateBuf = new SharedArrayBuffer(4 * SLOTS);
    const dataBuf = new SharedArrayBuffer(8 * n * SLOTS);
    this.state = new Int32Array(stateBuf);
    this.slots = Array.from({ length: SLOTS }, (_, s) => new Float64Array(dataBuf, 8 * n * s, n));
    try {
      this.worker = new Worker(new URL('./noise-worker.mjs', import.meta.url), { workerData: { stateBuf, dataBuf, n, slots: SLOTS } });
      this.worker.unref(); // never keeps the process alive
      this.worker.on('error', () => {
        this.worker = null; // fall back to drawing inline; the privacy guarantee does not depend on the worker
      });
    } catch {
      this.worker = null;
    }
  }

  /** n fresh N(0, σ²) values: a prefetched draw when one is ready, else one drawn now. */
  take(sigma: number): Float32Array {
    const s = this.next;
    if (this.worker && Atomics.load(this.state, s) === SLOT_READY) {
      const out = new Float32Array(this.n);
      scaleSecureSums(this.slots[s]!, sigma, out);
      // Consumed: the worker may overwrite it only now.
      Atomics.store(this.state, s, SLOT_EMPTY);
      Atomics.notify(this.state, s);
      this.next = (s + 1) % SLOTS;
      this.served.prefetched += 1;
      return out;
    }
    this.served.inline += 1;
    return secureGaussian(this.n, sigma, this.inlineRng);
  }

  /** Waits (up to `ms`) until the next slot is ready; tests only. */
  waitReady(ms: number): boolean {
    if (!this.worker) return false;
    const deadline = Date.now() + ms;
    while (Atomics.load(this.state, this.next) !== SLOT_READY) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      Atomics.wait(this.state, this.next, SLOT_EMPTY, Math.min(left, 50));
    }
    return true;
  }

  close(): void {
    for (let s = 0; s < SLOTS; s++) {
      Atomics.store(this.state, s, SLOT_CLOSED);
      Atomics.notify(this.state, s);
    }
    void this.worker?.terminate();
    this.worker = null;
  }
}

/** The worker's loop (noise-worker.mjs runs it): fill every EMPTY slot, sleep while both are READY. */
export function runNoiseWorker(o: { stateBuf: SharedArrayBuffer; dataBuf: SharedArrayBuffer; n: number; slots: number }): void {
  const state = new Int32Array(o.stateBuf);
  const slots = Array.from({ length: o.slots }, (_, s) => new Float64Array(o.dataBuf, 8 * o.n * s, o.n));
  const scratch = new Float64Array(o.n);
  for (let s = 0; ; s = (s + 1) % o.slots) {
    // Sleep while this slot holds an unconsumed draw.
    while (Atomics.load(state, s) === SLOT_READY) Atomics.wait(state, s, SLOT_READY);
    if (Atomics.load(state, s) === SLOT_CLOSED) return;
    fillSecureSums(slots[s]!, undefined, scratch);
    // Publish only if nobody closed it meanwhile.
    if (Atomics.compareExchange(state, s, SLOT_EMPTY, SLOT_READY) === SLOT_CLOSED) return;
  }
}
