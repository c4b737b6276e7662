import { describe, expect, it } from 'vitest';
import { conditionalSpans, defaultModelConfig, parseModelConfig, validateSpans, type OutputSpan } from '../../shared/model/config';

const spans: OutputSpan[] = [
  { column: 'amount', kind: 'tanh', dim: 1, offset: 0 },
  { column: 'amount', kind: 'softmax', dim: 4, offset: 1 }, // mode indicator of a continuous column
  { column: 'channel', kind: 'softmax', dim: 3, offset: 5 },
  { column: 'fraud', kind: 'softmax', dim: 2, offset: 8 },
];

describe('model config', () => {
  it('fills defaults and round-trips through JSON', () => {
    const c = defaultModelConfig();
    expect(c).toMatchObject({ architecture: 'mlp', noiseDim: 128, generatorDims: [256, 256], pac: 1, loss: 'ns', gumbelTau: 0.2 });
    expect(parseModelConfig(JSON.parse(JSON.stringify(c)))).toEqual(c);
    const ct = defaultModelConfig({ architecture: 'ctgan' });
    expect(ct.pac).toBe(10);
    expect(ct.loss).toBe('wgan-gp');
    expect(defaultModelConfig({ architecture: 'ctgan', pac: 1, loss: 'ns' })).toMatchObject({ pac: 1, loss: 'ns' });
  });

  it('rejects bad values naming the key', () => {
    expect(() => parseModelConfig({ architecture: 'transformer' })).toThrow(/'architecture' must be one of 'mlp', 'ctgan'/);
    expect(() => parseModelConfig({ noiseDim: 0 })).toThrow(/'noiseDim' must be an integer in \[1, 4096\], got 0/);
    expect(() => parseModelConfig({ generatorDims: [] })).toThrow(/'generatorDims' must be a non-empty array/);
    expect(() => parseModelConfig({ dropout: 1 })).toThrow(/'dropout' must be a number in \[0, 0.95\]/);
    expect(() => parseModelConfig({ gumbelTau: 0 })).toThrow(/'gumbelTau' must be a number in \(0, 10\]/);
    expect(() => parseModelConfig({ lr: 0.1 })).toThrow(/unknown key 'lr'/);
    expect(() => parseModelConfig([1])).toThrow(/expected a JSON object/);
    expect(() => parseModelConfig({ conditionalColumns: ['a', 'a'] })).toThrow(/lists a column twice/);
  });
});

describe('spans and the conditional vector', () => {
  it('validates that spans tile the output in order', () => {
    expect(validateSpans(spans)).toBe(10);
    expect(() => validateSpans(spans, 11)).toThrow(/cover 10 dims but outputDim is 11/);
    const gap = spans.map((s, i) => (i === 2 ? { ...s, offset: 6 } : s));
    expect(() => validateSpans(gap)).toThrow(/spans\[2\] \('channel'\): offset 6 but the previous spans end at 5/);
    expect(() => validateSpans([{ column: 'x', kind: 'softmax', dim: 1, offset: 0 }])).toThrow(/softmax span needs dim >= 2/);
    expect(() => validateSpans([])).toThrow(/non-empty/);
  });

  it('conditions by default on discrete columns only, not on a continuous column\'s modes', () => {
    const cs = conditionalSpans(defaultModelConfig(), spans);
    expect(cs.map((c) => c.column)).toEqual(['channel', 'fraud']);
    expect(cs.map((c) => [c.offset, c.dim, c.condOffset])).toEqual([
      [5, 3, 0],
      [8, 2, 3],
    ]);
  });

  it('honours an explicit list (in span order) and rejects unknown columns', () => {
    const cs = conditionalSpans(defaultModelConfig({ conditionalColumns: ['fraud', 'amount'] }), spans);
    expect(cs.map((c) => [c.column, c.condOffset])).toEqual([
      ['amount', 0],
      ['fraud', 4],
    ]);
    expect(conditionalSpans(defaultModelConfig({ conditionalColumns: [] }), spans)).toEqual([]);
    expect(() => conditionalSpans(defaultModelConfig({ conditionalColumns: ['iban'] }), spans)).toThrow(/'iban' has no softmax span/);
  });
});
