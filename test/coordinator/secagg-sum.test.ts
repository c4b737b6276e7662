// The coordinator's "aggregate from a sum" path (secure aggregation) and its start-up policy.
import { describe, expect, it } from 'vitest';
import { meanFromSum, weightedMean } from '../../coordinator/strategy/aggregate';
import { FedAvg, TrimmedMeanFedAvg } from '../../coordinator/strategy/fedavg';
import { checkSecureAggregationPolicy, secAggMeanErrorBound } from '../../coordinator/secagg-round';

const t = (name: string, data: number[]) => ({ name, shape: [data.length], data: Float32Array.from(data) });

describe('aggregate from a sum', () => {
  it('meanFromSum(Σ w·u, Σ w) equals the weighted mean', () => {
    const items = [
      { tensors: [t('a', [1, -2, 3])], weight: 100 },
      { tensors: [t('a', [0.5, 4, -1])], weight: 300 },
    ];
    const sum = [t('a', [1 * 100 + 0.5 * 300, -2 * 100 + 4 * 300, 3 * 100 - 300])];
    const a = meanFromSum(sum, 400)[0]!.data;
    const b = weightedMean(items)[0]!.data;
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 6));
    expect(() => meanFromSum(sum, 0)).toThrow(/total weight/);
  });

  it('FedAvg applies it to the global model; a trimmed mean cannot run under secure aggregation', () => {
    const out = new FedAvg().aggregateFromSum!([t('a', [10, 10])], [t('a', [4, -8])], 4, []);
    expect(Array.from(out[0]!.data)).toEqual([11, 8]);
    expect(new TrimmedMeanFedAvg(1).aggregateFromSum).toBeUndefined();
  });
});

describe('secure-aggregation policy', () => {
  it('refuses rounds of fewer than 3 banks unless opted out', () => {
    expect(() => checkSecureAggregationPolicy({ secureAggregation: true, minClients: 2 })).toThrow(/--insecure-aggregation/);
    expect(() => checkSecureAggregationPolicy({ secureAggregation: false, minClients: 2 })).not.toThrow();
    expect(() => checkSecureAggregationPolicy({ secureAggregation: true, minClients: 3 })).not.toThrow();
  });

  it('states the mean error bound |U3|·W / (scale·Σm)', () => {
    expect(secAggMeanErrorBound({ scale: 2 ** 20, weightCap: 1000 }, 4, 2000)).toBeCloseTo((4 * 1000) / (2 ** 20 * 2000), 15);
  });
});
