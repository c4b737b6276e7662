// Named tensors: the plain-array form of model weights and updates that crosses module boundaries
// (structurally identical to protocol's WireTensor). Pure functions over Float32Array, no tfjs.

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Checks one tensor's internal consistency (shape entries, data length). */
export function validateNamedTensor(t: NamedTensor, where = 'tensor'): void {
  if (typeof t.name !== 'string' || t.name === '') throw new Error(`${where}: name must be a non-empty string`);
  if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`${where} '${t.name}': shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
  }
  if (!(t.data instanceof Float32Array)) throw new Error(`${where} '${t.name}': data must be a Float32Array`);
  const n = sizeOf(t.shape);
  if (t.data.length !== n) {
    throw new Error(`${where} '${t.name}': data has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${n}`);
  }
}

/** Checks that b has exactly a's names, order and shapes (for elementwise list maths). */
export function assertSameLayout(a: readonly NamedTensor[], b: readonly NamedTensor[], op = 'operation'): void {
  if (a.length !== b.length) throw new Error(`${op}: tensor lists differ in length (${a.length} vs ${b.length})`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.name !== y.name) throw new Error(`${op}: tensor ${i} is '${x.name}' in one list and '${y.name}' in the other`);
    if (x.shape.length !== y.shape.length || x.shape.some((d, j) => d !== y.shape[j])) {
      throw new Error(`${op}: '${x.name}' has shape [${x.shape.join(', ')}] vs [${y.shape.join(', ')}]`);
    }
    if (x.data.length !== y.data.length) throw new Error(`${op}: '${x.name}' data lengths differ (${x.data.length} vs ${y.data.length})`);
  }
}

export function totalSize(ts: readonly NamedTensor[]): number {
  let n = 0;
  for (const t of ts) n += t.data.length;
  return n;
}

/** Concatenates all tensors' data in list order into one vector. */
export function flatten(ts: readonly NamedTensor[]): Float32Array {
  const out = new Float32Array(totalSize(ts));
  let o = 0;
  for (const t of ts) {
    out.set(t.data, o);
    o += t.data.length;
  }
  return out;
}

/** Inverse of flatten given the layout (names + shapes); copies the data. */
export function unflatten(flat: Float32Array, layout: readonly { name: string; shape: readonly number[] }[]): NamedTensor[] {
  const need = layout.reduce((s, l) => s + sizeOf(l.shape), 0);
  if (flat.length !== need) throw new Error(`unflatten: vector has ${flat.length} values but the layout needs ${need}`);
  let o = 0;
  return layout.map((l) => {
    const n = sizeOf(l.shape);
    const t = { name: l.name, shape: [...l.shape], data: flat.slice(o, o + n) };
    o += n;
    return t;
  });
}

export function l2NormSquared(ts: readonly NamedTensor[]): number {
  let s = 0;
  for (const t of ts) {
    const d = t.data;
    for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  }
  return s;
}

export function l2Norm(ts: readonly NamedTensor[]): number {
  return Math.sqrt(l2NormSquared(ts));
}

function zipWith(a: readonly NamedTensor[], b: readonly NamedTensor[], op: string, f: (x: number, y: number) => number): NamedTensor[] {
  assertSameLayout(a, b, op);
  return a.map((x, i) => {
    const y = b[i]!;
    const out = new Float32Array(x.data.length);
    for (let j = 0; j < out.length; j++) out[j] = f(x.data[j]!, y.data[j]!);
    return { name: x.name, shape: [...x.shape], data: out };
  });
}

export function addTensors(a: readonly NamedTensor[], b: readonly NamedTensor[]): NamedTensor[] {
  return zipWith(a, b, 'addTensors', (x, y) => x + y);
}

export function subTensors(a: readonly NamedTensor[], b: readonly NamedTensor[]): NamedTensor[] {
  return zipWith(a, b, 'subTensors', (x, y) => x - y);
}

export function scaleTensors(a: readonly NamedTensor[], s: number): NamedTensor[] {
  if (!Number.isFinite(s)) throw new Error(`scaleTensors: scale must be finite, got ${s}`);
  return a.map((x) => {
    const out = new Float32Array(x.data.length);
    for (let j = 0; j < out.length; j++) out[j] = x.data[j]! * s;
    return { name: x.name, shape: [...x.shape], data: out };
  });
}

export function cloneTensors(a: readonly NamedTensor[]): NamedTensor[] {
  return a.map((x) => ({ name: x.name, shape: [...x.shape], data: x.data.slice() }));
}

/** The first non-finite value found, or undefined when everything is finite. */
export function findNonFinite(ts: readonly NamedTensor[]): { name: string; index: number; value: number } | undefined {
  for (const t of ts) {
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i]!)) return { name: t.name, index: i, value: d[i]! };
    }
  }
  return undefined;
}

export function allFinite(ts: readonly NamedTensor[]): boolean {
  return findNonFinite(ts) === undefined;
}

/** Throws naming the first NaN/Infinity (weights or updates must never carry them). */
export function assertFinite(ts: readonly NamedTensor[], what = 'tensors'): void {
  const bad = findNonFinite(ts);
  if (bad) throw new Error(`${what}: '${bad.name}' has a non-finite value (${bad.value}) at flat index ${bad.index}`);
}
