import { describe, expect, it } from 'vitest';
import { encodeForDistance, fitDistanceEncoder, knnDistances, KNN_BACKEND } from '../../shared/eval/nn';
import { rng } from '../../shared/eval/random';
import type { Table } from '../../shared/eval/table';

function table(n: number, seed: number, stretch: number): Table {
  const r = rng(seed);
  const cols: Table['columns'] = [];
  for (let k = 0; k < 6; k++) {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = (r() - 0.5) * (k === 0 ? stretch : 1) + (k === 3 && i % 17 === 0 ? Number.NaN : 0);
    cols.push({ kind: 'numeric', name: `n${k}`, values: v });
  }
  const codes = new Int32Array(n);
  for (let i = 0; i < n; i++) codes[i] = Math.floor(r() * 3);
  cols.push({ kind: 'categorical', name: 'c', codes, categories: ['a', 'b', 'c'] });
  return { nRows: n, columns: cols };
}

/** Brute force in float64 on the same encoding. */
function brute(q: Float32Array, nq: number, rf: Float32Array, nr: number, d: number, nNum: number, k: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < nq; i++) {
    const ds: number[] = [];
    for (let j = 0; j < nr; j++) {
      let s = 0;
      for (let t = 0; t < nNum; t++) s += (q[i * d + t]! - rf[j * d + t]!) ** 2;
      for (let t = nNum; t < d; t++) s += q[i * d + t] !== rf[j * d + t] ? 1 : 0;
      ds.push(Math.sqrt(s));
    }
    out.push(ds.sort((a, b) => a - b).slice(0, k));
  }
  return out;
}

describe('exact k-NN search', () => {
  it('uses the WebAssembly SIMD kernel on Node 20', () => {
    expect(KNN_BACKEND).toBe('wasm-simd');
  });

  for (const [stretch, js] of [[1, false], [1, true], [20, true]] as const) {
    it(`matches brute force on mixed numeric/categorical data (${js ? 'JS' : 'wasm'} kernel, first axis x${stretch})`, async () => {
      const ref = table(3000, 1, stretch);
      const qry = table(120, 2, stretch);
      const enc = fitDistanceEncoder(ref);
      const er = encodeForDistance(enc, ref);
      const eq = encodeForDistance(enc, qry);
      const got = await knnDistances(eq, er, 3, { threads: 1, js });
      const want = brute(eq.data, eq.n, er.data, er.n, er.d, er.nNum, 3);
      for (let i = 0; i < eq.n; i++) for (let t = 0; t < 3; t++) expect(got[i * 3 + t]!).toBeCloseTo(want[i]![t]!, 4);
    });
  }

  it('gives the same answer on worker threads as in the main thread, and JS as wasm', async () => {
    const ref = table(20_000, 3, 5);
    const qry = table(200, 4, 5);
    const enc = fitDistanceEncoder(ref);
    const er = encodeForDistance(enc, ref);
    const eq = encodeForDistance(enc, qry);
    const one = await knnDistances(eq, er, 2, { threads: 1 });
    const two = await knnDistances(eq, er, 2, { threads: 2 });
    expect(Array.from(two)).toEqual(Array.from(one));
    const js = await knnDistances(eq, er, 2, { threads: 2, js: true });
    for (let i = 0; i < one.length; i++) expect(js[i]!).toBeCloseTo(one[i]!, 5);
  });

  it('finds an exact copy at distance 0 and rejects mismatched encodings', async () => {
    const ref = table(500, 5, 1);
    const enc = fitDistanceEncoder(ref);
    const er = encodeForDistance(enc, ref);
    const eq = encodeForDistance(enc, ref, [7, 99]);
    const d = await knnDistances(eq, er, 1);
    expect(Array.from(d)).toEqual([0, 0]);
    await expect(knnDistances({ ...eq, d: 3 }, er, 1)).rejects.toThrow(/query has 3 dims/);
  });
});
