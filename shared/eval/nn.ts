// Distances between records for DCR / NNDR / membership inference, and an exact k-nearest-neighbour
// search fast enough for ~5k queries against ~230k reference rows: brute force over Float32 rows
// with a WebAssembly SIMD distance kernel (fallback: a JS kernel with partial-distance early
// termination and projection pruning), split over worker threads sharing SharedArrayBuffers.
//
// Metric: d(x, y)^2 = sum over numeric columns ((x - y) / robustRange)^2 + number of categorical
// columns that differ (Hamming), robustRange = q99 - q1 of the real training column (falling back
// to max - min, then 1); missing numeric values take the training median.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Table } from './table';
import { quantileSorted, sortedFinite } from './random';

export interface DistanceEncoder {
  /** Numeric columns, in encoded order (by descending scaled variance, so early termination bites sooner). */
  numeric: { index: number; name: string; median: number; scale: number }[];
  categorical: { index: number; name: string }[];
}

export function fitDistanceEncoder(train: Table): DistanceEncoder {
  const numeric: (DistanceEncoder['numeric'][number] & { v: number })[] = [];
  const categorical: DistanceEncoder['categorical'] = [];
  train.columns.forEach((c, index) => {
    if (c.kind === 'categorical') {
      categorical.push({ index, name: c.name });
      return;
    }
    const s = sortedFinite(c.values);
    const median = s.length ? quantileSorted(s, 0.5) : 0;
    let scale = quantileSorted(s, 0.99) - quantileSorted(s, 0.01);
    if (!(scale > 0)) scale = s.length ? s[s.length - 1]! - s[0]! : 0;
    if (!(scale > 0)) scale = 1;
    let m = 0;
    for (let i = 0; i < s.length; i++) m += s[i]!;
    m /= s.length || 1;
    let v = 0;
    for (let i = 0; i < s.length; i++) v += (s[i]! - m) ** 2;
    numeric.push({ index, name: c.name, median, scale, v: v / (s.length || 1) / (scale * scale) });
  });
  numeric.sort((a, b) => b.v - a.v);
  return { numeric: numeric.map(({ v: _v, ...rest }) => rest), categorical };
}

export interface Encoded {
  data: Float32Array;
  n: number;
  d: number;
  nNum: number;
}

/** Encodes rows `idx` (all rows when omitted) of `table` into a shared row-major Float32 buffer. */
export function encodeForDistance(enc: DistanceEncoder, table: Table, idx?: ArrayLike<number>): Encoded {
  const n = idx ? idx.length : table.nRows;
  const nNum = enc.numeric.length;
  const d = nNum + enc.categorical.length;
  const data = new Float32Array(new SharedArrayBuffer(Math.max(4, n * d * 4)));
  enc.numeric.forEach((e, j) => {
    const c = table.columns[e.index]!;
    if (c.kind !== 'numeric') throw new Error(`distance encoding: column "${e.name}" is not numeric in this table`);
    const v = c.values;
    for (let r = 0; r < n; r++) {
      const x = v[idx ? idx[r]! : r]!;
      data[r * d + j] = ((Number.isNaN(x) ? e.median : x) - e.median) / e.scale;
    }
  });
  enc.categorical.forEach((e, jj) => {
    const c = table.columns[e.index]!;
    if (c.kind !== 'categorical') throw new Error(`distance encoding: column "${e.name}" is not categorical in this table`);
    const j = nNum + jj;
    for (let r = 0; r < n; r++) data[r * d + j] = c.codes[idx ? idx[r]! : r]!;
  });
  return { data, n, d, nNum };
}

// The kernel is a JS source string so the same code runs in the main thread and in eval'd workers.
// References are sorted by their projection P on the top principal direction; a query scans
// outwards from its own projection and stops once the projection gap alone exceeds its k-th best
// distance (|u.(q - r)| <= ||q - r|| for a unit u), so the search stays exact.
const KERNEL_SRC = `function knnKernel(Q, R, P, QP, q0, q1, nr, d, nNum, k, out) {
  const best = new Float64Array(k);
  for (let qi = q0; qi < q1; qi++) {
    best.fill(Infinity);
    let worst = Infinity;
    const qo = qi * d;
    const qp = QP[qi];
    let lo = 0, hi = nr;
    while (lo < hi) { const m = (lo + hi) >> 1; if (P[m] < qp) lo = m + 1; else hi = m; }
    hi = lo; lo = lo - 1;
    for (;;) {
      let r;
      const gl = lo >= 0 ? qp - P[lo] : Infinity;
      const gh = hi < nr ? P[hi] - qp : Infinity;
      if (gl <= gh) { if (gl * gl >= worst) break; r = lo--; } else { if (gh * gh >= worst) break; r = hi++; }
      const ro = r * d;
      let s = 0;
      let j = 0;
      for (; j + 4 <= nNum; j += 4) {
        const a = Q[qo + j] - R[ro + j];
        const b = Q[qo + j + 1] - R[ro + j + 1];
        const c = Q[qo + j + 2] - R[ro + j + 2];
        const e = Q[qo + j + 3] - R[ro + j + 3];
        s += a * a + b * b + c * c + e * e;
        if (s >= worst) break;
      }
      if (s >= worst) continue;
      for (; j < nNum; j++) { const a = Q[qo + j] - R[ro + j]; s += a * a; }
      for (; j < d; j++) if (Q[qo + j] !== R[ro + j]) s += 1;
      if (s < worst) {
        let p = k - 1;
        while (p > 0 && best[p - 1] > s) { best[p] = best[p - 1]; p--; }
        best[p] = s;
        worst = best[k - 1];
      }
    }
    for (let t = 0; t < k; t++) out[qi * k + t] = Math.sqrt(best[t]);
  }
}`;

// ---- WebAssembly SIMD kernel: squared distances of one query to every reference row, 4 lanes at
// a time (numeric lanes: (q - r)^2; categorical lanes: q != r). Hand-assembled (no toolchain):
// dists(q, r, nr, numericGroups, categoricalGroups, out) over rows padded to groups of 4 floats.
function buildWasm(): Uint8Array {
  const leb = (n: number): number[] => {
    const o: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n) b |= 0x80;
      o.push(b);
    } while (n);
    return o;
  };
  const sec = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
  const str = (t: string): number[] => [t.length, ...[...t].map((c) => c.charCodeAt(0))];
  const [Q, R, NR, DN, DC, OUT, QP, J, ACC, T] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const lg = (i: number): number[] => [0x20, i];
  const ls = (i: number): number[] => [0x21, i];
  const lt = (i: number): number[] => [0x22, i];
  const V = (op: number): number[] => [0xfd, ...leb(op)];
  const load = [...V(0x00), 0x00, 0x00];
  const inc = (i: number, n: number): number[] => [...lg(i), 0x41, ...leb(n), 0x6a, ...ls(i)];
  const dec = (i: number): number[] => [...lg(i), 0x41, 1, 0x6b, ...ls(i)];
  const zero = [...V(0x0c), ...new Array<number>(16).fill(0)];
  const ones = [...V(0x0c), ...[0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f]];
  const groupLoop = (lane: number[]): number[] => [
    0x02, 0x40, 0x03, 0x40,
    ...lg(J), 0x45, 0x0d, 1,
    ...lg(QP), ...load, ...lg(R), ...load, ...lane, ...lg(ACC), ...V(0xe4), ...ls(ACC),
    ...inc(QP, 16), ...inc(R, 16), ...dec(J), 0x0c, 0,
    0x0b, 0x0b,
  ];
  const body = [
    0x02, 0x02, 0x7f, 0x02, 0x7b, // locals: qp, j (i32); acc, t (v128)
    0x02, 0x40, 0x03, 0x40,
    ...lg(NR), 0x45, 0x0d, 1,
    ...zero, ...ls(ACC), ...lg(Q), ...ls(QP), ...lg(DN), ...ls(J),
    ...groupLoop([...V(0xe5), ...lt(T), ...lg(T), ...V(0xe6)]), // f32x4.sub, square
    ...lg(DC), ...ls(J),
    ...groupLoop([...V(0x42), ...ones, ...V(0x4e)]), // f32x4.ne & 1.0
    ...lg(OUT),
    ...lg(ACC), ...V(0x1f), 0, ...lg(ACC), ...V(0x1f), 1, 0x92, ...lg(ACC), ...V(0x1f), 2, 0x92, ...lg(ACC), ...V(0x1f), 3, 0x92,
    0x38, 0x02, 0x00,
    ...inc(OUT, 4), ...dec(NR), 0x0c, 0,
    0x0b, 0x0b, 0x0b,
  ];
  return Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...sec(1, [1, 0x60, 6, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...sec(3, [1, 0]),
    ...sec(5, [1, 0, 1]),
    ...sec(7, [2, ...str('mem'), 2, 0, ...str('dists'), 0, 0]),
    ...sec(10, [1, ...leb(body.length), ...body]),
  ]);
}

const WASM_KERNEL_SRC = `function knnWasm(bytes, Q, R, q0, q1, nr, d, nNum, k, out) {
  const dn = (nNum + 3) >> 2, dc = (d - nNum + 3) >> 2, row = (dn + dc) * 4;
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
  const mem = inst.exports.mem, dists = inst.exports.dists;
  const rOff = row * 4, outOff = rOff + nr * row * 4, need = outOff + nr * 4 + 16;
  const grow = Math.ceil(need / 65536) - mem.buffer.byteLength / 65536;
  if (grow > 0) mem.grow(grow);
  const f = new Float32Array(mem.buffer);
  const rb = rOff / 4;
  for (let r = 0; r < nr; r++) {
    const src = r * d, dst = rb + r * row;
    for (let j = 0; j < nNum; j++) f[dst + j] = R[src + j];
    for (let j = nNum; j < d; j++) f[dst + dn * 4 + j - nNum] = R[src + j];
  }
  const o = new Float32Array(mem.buffer, outOff, nr);
  const best = new Float64Array(k);
  for (let qi = q0; qi < q1; qi++) {
    const src = qi * d;
    for (let j = 0; j < nNum; j++) f[j] = Q[src + j];
    for (let j = nNum; j < d; j++) f[dn * 4 + j - nNum] = Q[src + j];
    dists(0, rOff, nr, dn, dc, outOff);
    best.fill(Infinity);
    let worst = Infinity;
    for (let r = 0; r < nr; r++) {
      const s = o[r];
      if (s < worst) {
        let p = k - 1;
        while (p > 0 && best[p - 1] > s) { best[p] = best[p - 1]; p--; }
        best[p] = s;
        worst = best[k - 1];
      }
    }
    for (let t = 0; t < k; t++) out[qi * k + t] = Math.sqrt(Math.max(0, best[t]));
  }
}`;

let wasmBytes: Uint8Array | null = null;
try {
  const b = buildWasm();
  // Validates the module; throws where WebAssembly SIMD is unavailable. (lib typings lack WebAssembly.)
  new (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => unknown } }).WebAssembly.Module(b);
  wasmBytes = b;
} catch {
  wasmBytes = null; // fall back to the pure-JS kernel
}
type WasmKernel = (bytes: Uint8Array, Q: Float32Array, R: Float32Array, q0: number, q1: number, nr: number, d: number, nNum: number, k: number, out: Float64Array) => void;
const wasmKernel = new Function(`return (${WASM_KERNEL_SRC})`)() as WasmKernel;

/** Whether the WebAssembly SIMD kernel is in use (else the JS kernel). */
export const KNN_BACKEND: 'wasm-simd' | 'js' = wasmBytes ? 'wasm-simd' : 'js';

type Kernel = (
  Q: Float32Array, R: Float32Array, P: Float64Array, QP: Float64Array,
  q0: number, q1: number, nr: number, d: number, nNum: number, k: number, out: Float64Array,
) => void;
const kernel = new Function(`return (${KERNEL_SRC})`)() as Kernel;

const WORKER_SRC = `const { parentPort, workerData: w } = require('node:worker_threads');
if (w.wasm) {
  const kernel = (${WASM_KERNEL_SRC});
  kernel(w.wasm, new Float32Array(w.r), new Float32Array(w.sr), w.q0, w.q1, w.nr, w.d, w.nNum, w.k, new Float64Array(w.out));
} else {
  const kernel = (${KERNEL_SRC});
  kernel(new Float32Array(w.r), new Float32Array(w.sr), new Float64Array(w.p), new Float64Array(w.qp),
    w.q0, w.q1, w.nr, w.d, w.nNum, w.k, new Float64Array(w.out));
}
parentPort.postMessage('done');`;

export interface KnnOptions {
  /** Worker threads; default: available parallelism. 1 = run in this thread. */
  threads?: number;
  /** Force the pure-JS kernel (tests compare the two). */
  js?: boolean;
}

/** Top principal direction of the numeric dims (power iteration on a <= 4000-row sample), unit norm. */
function principalDirection(e: Encoded): Float64Array {
  const m = e.nNum;
  const u = new Float64Array(m);
  if (m === 0) return u;
  const step = Math.max(1, Math.floor(e.n / 4000));
  const rows: number[] = [];
  for (let i = 0; i < e.n; i += step) rows.push(i);
  const mean = new Float64Array(m);
  for (const i of rows) for (let j = 0; j < m; j++) mean[j]! += e.data[i * e.d + j]!;
  for (let j = 0; j < m; j++) mean[j]! /= rows.length || 1;
  for (let j = 0; j < m; j++) u[j] = 1 / Math.sqrt(m) + (j === 0 ? 1e-3 : 0);
  for (let it = 0; it < 30; it++) {
    const v = new Float64Array(m);
    for (const i of rows) {
      let dot = 0;
      for (let j = 0; j < m; j++) dot += (e.data[i * e.d + j]! - mean[j]!) * u[j]!;
      for (let j = 0; j < m; j++) v[j]! += dot * (e.data[i * e.d + j]! - mean[j]!);
    }
    let norm = 0;
    for (let j = 0; j < m; j++) norm += v[j]! * v[j]!;
    norm = Math.sqrt(norm);
    if (!(norm > 0)) break;
    for (let j = 0; j < m; j++) u[j] = v[j]! / norm;
  }
  return u;
}

function project(e: Encoded, u: Float64Array): Float64Array {
  const p = new Float64Array(new SharedArrayBuffer(Math.max(8, e.n * 8)));
  for (let i = 0; i < e.n; i++) {
    let s = 0;
    for (let j = 0; j < e.nNum; j++) s += e.data[i * e.d + j]! * u[j]!;
    p[i] = s;
  }
  return p;
}

/**
 * Exact k nearest-neighbour distances from each query row to the reference rows (same encoding).
 * Returns a Float64Array n_q x k, each row ascending. Infinity where the reference has < k rows.
 */
export async function knnDistances(query: Encoded, ref: Encoded, k: number, opts: KnnOptions = {}): Promise<Float64Array> {
  if (query.d !== ref.d || query.nNum !== ref.nNum) throw new Error(`knn: query has ${query.d} dims, reference ${ref.d}`);
  if (!(k >= 1)) throw new Error(`knn: k must be >= 1, got ${k}`);
  const out = new Float64Array(new SharedArrayBuffer(Math.max(8, query.n * k * 8)));
  const wasm = opts.js ? null : wasmBytes;
  const threads = Math.max(1, Math.min(opts.threads ?? availableParallelism(), query.n));
  const small = query.n * ref.n * ref.d < 20_000_000;
  if (wasm) {
    if (threads === 1 || small) {
      wasmKernel(wasm, query.data, ref.data, 0, query.n, ref.n, ref.d, ref.nNum, k, out);
      return out;
    }
    await runWorkers(threads, query.n, (q0, q1) => ({ wasm, r: query.data.buffer, sr: ref.data.buffer, q0, q1, nr: ref.n, d: ref.d, nNum: ref.nNum, k, out: out.buffer }));
    return out;
  }
  const u = principalDirection(ref);
  const pr = project(ref, u);
  const order = Uint32Array.from({ length: ref.n }, (_, i) => i).sort((a, b) => pr[a]! - pr[b]!);
  const d = ref.d;
  const sr = new Float32Array(new SharedArrayBuffer(Math.max(4, ref.n * d * 4)));
  const P = new Float64Array(new SharedArrayBuffer(Math.max(8, ref.n * 8)));
  order.forEach((src, t) => {
    sr.set(ref.data.subarray(src * d, src * d + d), t * d);
    P[t] = pr[src]!;
  });
  const qp = project(query, u);
  if (threads === 1 || small) {
    kernel(query.data, sr, P, qp, 0, query.n, ref.n, d, ref.nNum, k, out);
    return out;
  }
  await runWorkers(threads, query.n, (q0, q1) => ({ r: query.data.buffer, sr: sr.buffer, p: P.buffer, qp: qp.buffer, q0, q1, nr: ref.n, d, nNum: ref.nNum, k, out: out.buffer }));
  return out;
}

/** Splits queries into contiguous chunks, one worker thread each; results land in shared memory. */
async function runWorkers(threads: number, nq: number, data: (q0: number, q1: number) => Record<string, unknown>): Promise<void> {
  const per = Math.ceil(nq / threads);
  const jobs: Promise<void>[] = [];
  for (let t = 0; t < threads; t++) {
    const q0 = t * per;
    const q1 = Math.min(nq, q0 + per);
    if (q0 >= q1) break;
    jobs.push(
      new Promise<void>((resolve, reject) => {
        const w = new Worker(WORKER_SRC, { eval: true, workerData: data(q0, q1) });
        w.once('message', () => resolve());
        w.once('error', reject);
        w.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`knn worker exited with code ${code}`))));
      }),
    );
  }
  await Promise.all(jobs);
}
