import { describe, expect, it } from 'vitest';
import {
  addTensors,
  allFinite,
  assertFinite,
  cloneTensors,
  flatten,
  l2Norm,
  scaleTensors,
  subTensors,
  unflatten,
  validateNamedTensor,
  type NamedTensor,
} from '../../shared/tensor/named';
import { Rng } from '../../shared/tensor/random';

const t = (name: string, shape: number[], values: number[]): NamedTensor => ({ name, shape, data: Float32Array.from(values) });

describe('named tensors', () => {
  const a = [t('w', [2, 2], [1, 2, 3, 4]), t('b', [2], [5, 6])];
  const b = [t('w', [2, 2], [0.5, 0.5, 0.5, 0.5]), t('b', [2], [-1, 1])];

  it('flatten/unflatten round-trips names, shapes and values without aliasing', () => {
    const flat = flatten(a);
    expect(Array.from(flat)).toEqual([1, 2, 3, 4, 5, 6]);
    const back = unflatten(flat, a);
    expect(back.map((x) => x.name)).toEqual(['w', 'b']);
    expect(back.map((x) => x.shape)).toEqual([[2, 2], [2]]);
    flat[0] = 99;
    expect(back[0]!.data[0]).toBe(1);
    expect(() => unflatten(new Float32Array(5), a)).toThrow(/5 values but the layout needs 6/);
  });

  it('adds, subtracts and scales elementwise, and computes the global L2 norm', () => {
    expect(Array.from(addTensors(a, b)[1]!.data)).toEqual([4, 7]);
    expect(Array.from(subTensors(a, b)[0]!.data)).toEqual([0.5, 1.5, 2.5, 3.5]);
    expect(Array.from(scaleTensors(a, 2)[1]!.data)).toEqual([10, 12]);
    expect(l2Norm(a)).toBeCloseTo(Math.sqrt(1 + 4 + 9 + 16 + 25 + 36), 6);
    // inputs untouched
    expect(Array.from(a[1]!.data)).toEqual([5, 6]);
  });

  it('refuses lists with different names, order or shapes', () => {
    expect(() => addTensors(a, [b[1]!, b[0]!])).toThrow(/tensor 0 is 'w' in one list and 'b'/);
    expect(() => subTensors(a, [b[0]!])).toThrow(/differ in length/);
    expect(() => addTensors(a, [t('w', [4], [1, 1, 1, 1]), b[1]!])).toThrow(/'w' has shape \[2, 2\] vs \[4\]/);
    expect(() => scaleTensors(a, NaN)).toThrow(/finite/);
  });

  it('finds non-finite values and validates data length against shape', () => {
    expect(allFinite(a)).toBe(true);
    const bad = cloneTensors(a);
    bad[1]!.data[1] = Infinity;
    expect(allFinite(bad)).toBe(false);
    expect(() => assertFinite(bad, 'update')).toThrow(/update: 'b' has a non-finite value \(Infinity\) at flat index 1/);
    expect(() => validateNamedTensor(t('w', [2, 3], [1, 2]))).toThrow(/2 values but shape \[2, 3\] needs 6/);
    expect(() => validateNamedTensor({ name: 'x', shape: [-1], data: new Float32Array(0) })).toThrow(/non-negative integers/);
  });
});

describe('Rng', () => {
  it('is reproducible per seed and different across seeds', () => {
    expect(Array.from(new Rng(3).uniform(5))).toEqual(Array.from(new Rng(3).uniform(5)));
    expect(Array.from(new Rng(3).uniform(5))).not.toEqual(Array.from(new Rng(4).uniform(5)));
  });

  it('draws normals with the right moments and dropout masks with the right rate', () => {
    const x = new Rng(1).normal(20001);
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const v = x.reduce((s, y) => s + (y - mean) ** 2, 0) / x.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(v - 1)).toBeLessThan(0.05);
    const m = new Rng(2).dropoutMask(20000, 0.5);
    const kept = m.filter((q) => q !== 0);
    expect(kept.every((q) => q === 2)).toBe(true);
    expect(Math.abs(kept.length / m.length - 0.5)).toBeLessThan(0.02);
  });
});
