import { describe, expect, it } from 'vitest';
import { addClientLevelNoise, prepareUpdate } from '../../client-node/update';
import { secureGaussian } from '../../shared/privacy/secure-noise';

const t = (name: string, data: number[]) => ({ name, shape: [data.length], data: Float32Array.from(data) });

describe('update preparation', () => {
  it('clips the whole delta to S', () => {
    const { update, norm, clipped } = prepareUpdate([t('a', [3, 0]), t('b', [0, 4])], [t('a', [0, 0]), t('b', [0, 0])], 1);
    expect(norm).toBeCloseTo(5, 6);
    expect(clipped).toBe(true);
    const n2 = update.reduce((s, x) => s + x.data.reduce((a, v) => a + v * v, 0), 0);
    expect(Math.sqrt(n2)).toBeCloseTo(1, 5);
    expect(() => prepareUpdate([t('a', [Number.NaN])], [t('a', [0])], 1)).toThrow(/non-finite/);
  });

  it('client-level noise has std z·S/√n per coordinate', () => {
    const upd = [t('w', new Array(200_000).fill(0))];
    const sigma = addClientLevelNoise(upd, 2, 1.5, 4, secureGaussian);
    expect(sigma).toBeCloseTo(1.5, 10); // 1.5 · 2 / √4
    const d = upd[0]!.data;
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    const sd = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(sd / 1.5).toBeGreaterThan(0.98);
    expect(sd / 1.5).toBeLessThan(1.02);
    expect(() => addClientLevelNoise(upd, 0, 1, 1, secureGaussian)).toThrow(/positive update clip norm/);
  });
});
