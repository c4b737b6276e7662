import { describe, expect, it } from 'vitest';
import { AggregationError, applyDelta, emaGenerator, emaWarmupBeta, l2Norm, trimmedMean, weightedMean } from '../../coordinator/strategy/aggregate';
import { FedAvg, createStrategy } from '../../coordinator/strategy/fedavg';
import type { Tensors } from '../../coordinator/strategy/types';

const t = (name: string, values: number[], shape = [values.length]): Tensors[number] => ({ name, shape, data: Float32Array.from(values) });

describe('weightedMean (FedAvg maths)', () => {
  it('weights each update by its sample count', () => {
    const a = [t('w', [1, 2, 3]), t('b', [10])];
    const b = [t('w', [4, 5, 6]), t('b', [20])];
    const out = weightedMean([
      { tensors: a, weight: 100 },
      { tensors: b, weight: 300 },
    ]);
    // (100*1 + 300*4)/400 = 3.25 etc.
    expect(Array.from(out[0]!.data)).toEqual([3.25, 4.25, 5.25]);
    expect(Array.from(out[1]!.data)).toEqual([17.5]);
    expect(out[0]!.shape).toEqual([3]);
  });

  it('equals the plain mean for equal sample counts and is order-independent', () => {
    const lists = [0, 1, 2, 3].map((k) => [t('w', [k, 2 * k, -k])]);
    const fwd = weightedMean(lists.map((l) => ({ tensors: l, weight: 7 })));
    const rev = weightedMean([...lists].reverse().map((l) => ({ tensors: l, weight: 7 })));
    expect(Array.from(fwd[0]!.data)).toEqual([1.5, 3, -1.5]);
    expect(Array.from(rev[0]!.data)).toEqual(Array.from(fwd[0]!.data));
  });

  it('keeps float64 precision across many banks', () => {
    const n = 1000;
    const lists = Array.from({ length: n }, () => [t('w', [0.1])]);
    const out = weightedMean(lists.map((l) => ({ tensors: l, weight: 1 })));
    expect(out[0]!.data[0]).toBe(Math.fround(0.1));
  });

  it('rejects mismatched layouts, empty input and bad weights', () => {
    expect(() => weightedMean([])).toThrow(AggregationError);
    expect(() => weightedMean([{ tensors: [t('w', [1])], weight: 1 }, { tensors: [t('v', [1])], weight: 1 }])).toThrow(/'v', expected 'w'/);
    expect(() => weightedMean([{ tensors: [t('w', [1, 2])], weight: 1 }, { tensors: [t('w', [1, 2], [2, 1])], weight: 1 }])).toThrow(/shape/);
    expect(() => weightedMean([{ tensors: [t('w', [1])], weight: 0 }])).toThrow(/positive/);
    expect(() => weightedMean([{ tensors: [t('w', [1])], weight: NaN }])).toThrow(/positive/);
  });
});

describe('trimmedMean', () => {
  it('drops the extremes per coordinate', () => {
    const lists = [[t('w', [1, 100])], [t('w', [2, 0])], [t('w', [3, 1])], [t('w', [1000, 2])], [t('w', [4, -50])]];
    const out = trimmedMean(lists, 1);
    expect(Array.from(out[0]!.data)).toEqual([3, 1]);
  });
  it('refuses a trim that leaves nothing', () => {
    expect(() => trimmedMean([[t('w', [1])], [t('w', [2])]], 1)).toThrow(/trim/);
  });
});

describe('FedAvg strategy', () => {
  it('applies the weighted mean update to the global weights', () => {
    const global = [t('w', [1, 1])];
    const strategy = new FedAvg();
    const out = strategy.aggregate(
      global,
      [
        { bankId: 'a', sampleCount: 1, update: [t('w', [1, 0])], metrics: {} },
        { bankId: 'b', sampleCount: 3, update: [t('w', [-1, 4])], metrics: {} },
      ],
      [],
    );
    expect(Array.from(out[0]!.data)).toEqual([0.5, 4]);
    expect(Array.from(global[0]!.data)).toEqual([1, 1]); // pure: input untouched
  });
  it('selects at most maxParticipants banks deterministically', () => {
    const s = new FedAvg({ maxParticipants: 2 });
    expect(s.selectParticipants({ roundId: 1, available: ['c', 'a', 'b'] })).toEqual(['a', 'b']);
  });
  it('creates strategies by name and refuses unknown ones', () => {
    expect(createStrategy('trimmed-mean', { trim: 1 }).name).toBe('trimmed-mean');
    expect(() => createStrategy('fedmagic')).toThrow(/unknown strategy/);
  });
});

describe('applyDelta and l2Norm', () => {
  it('scales by the server learning rate', () => {
    expect(Array.from(applyDelta([t('w', [1, 2])], [t('w', [2, 2])], 0.5)[0]!.data)).toEqual([2, 3]);
    expect(l2Norm([t('a', [3]), t('b', [4])])).toBe(5);
  });
});

describe('emaGenerator (published model: generator and classifier averaged over rounds)', () => {
  const t = (name: string, v: number[]) => ({ name, shape: [v.length], data: Float32Array.from(v) });
  it("averages the sampled networks' tensors (G/ and the classifier's C/) with β and leaves the discriminator as the new round has it", () => {
    const prev = [t('G/0/kernel', [1, 2]), t('D/0/kernel', [5, 5]), t('C/0/kernel', [0, 4])];
    const next = [t('G/0/kernel', [3, 6]), t('D/0/kernel', [7, 9]), t('C/0/kernel', [4, 8])];
    const out = emaGenerator(prev, next, 0.75);
    expect(Array.from(out[0]!.data)).toEqual([1.5, 3]);
    expect(Array.from(out[1]!.data)).toEqual([7, 9]);
    expect(Array.from(out[2]!.data)).toEqual([1, 5]);
    expect(Array.from(prev[0]!.data)).toEqual([1, 2]); // inputs untouched
    // Only the networks named: G alone leaves C as the new round has it.
    expect(Array.from(emaGenerator(prev, next, 0.75, ['G/'])[2]!.data)).toEqual([4, 8]);
  });
  it('publishes the new round as is before any commit, or with β = 0; refuses β outside [0, 1) and a layout change', () => {
    const next = [t('G/0/kernel', [3, 6])];
    expect(emaGenerator(undefined, next, 0.9)).toBe(next);
    expect(emaGenerator([t('G/0/kernel', [0, 0])], next, 0)).toBe(next);
    expect(() => emaGenerator(undefined, next, 1)).toThrow(/\[0, 1\)/);
    expect(() => emaGenerator([t('G/1/kernel', [0, 0])], next, 0.5)).toThrow(/G\/0\/kernel/);
  });
});

describe('emaWarmupBeta', () => {
  it('averages the first rounds uniformly (β_t = 1 − 1/t) until β is reached', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map((t) => emaWarmupBeta(0.8, t))).toEqual([0, 0.5, 1 - 1 / 3, 0.75, 0.8, 0.8, 0.8]);
    // With the warm-up, publishing rounds 1..3 gives their plain mean.
    const t = (v: number) => [{ name: 'G/0/kernel', shape: [1], data: Float32Array.from([v]) }];
    let published: Tensors | undefined;
    for (const [round, v] of [[1, 3], [2, 6], [3, 9]] as const) published = emaGenerator(published, t(v), emaWarmupBeta(0.8, round));
    expect(published![0]!.data[0]).toBeCloseTo(6, 5);
    expect(() => emaWarmupBeta(0.8, 0)).toThrow(/≥ 1/);
  });
});
