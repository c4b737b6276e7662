// Small generated tables for the evaluation tests: correlated numeric columns, a categorical that
// depends on them, an id column, and a binary target with a known signal.
import { rng } from '../../shared/eval/random';
import { TableBuilderFactory, inferMetadata, type Metadata, type Table } from '../../shared/eval/table';

export const HEADER = ['id', 'age', 'income', 'balance', 'segment', 'region', 'fraud'];

/** String rows from one fixed distribution; `start` offsets ids so sets never share an id. */
export function genRows(n: number, seed: number, start = 0): string[][] {
  const r = rng(seed);
  const g = (): number => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const rows: string[][] = [];
  for (let i = 0; i < n; i++) {
    const age = 20 + 50 * r();
    const income = 1000 * (age / 10 + g());
    const balance = 0.8 * income + 500 * g();
    const z = (income - 4500) / 1500 + 0.3 * g();
    const segment = z > 0.8 ? 'gold' : z > -0.4 ? 'silver' : 'bronze';
    const region = ['north', 'south', 'east', 'west'][Math.floor(r() * 4)]!;
    const logit = -3 + 1.5 * ((balance - 3500) / 1500) + (segment === 'gold' ? 0.8 : 0) + (region === 'west' ? 1 : 0);
    const fraud = r() < 1 / (1 + Math.exp(-logit)) ? '1' : '0';
    rows.push([String(start + i), age.toFixed(2), income.toFixed(2), balance.toFixed(2), segment, region, fraud]);
  }
  return rows;
}

export interface Sets {
  meta: Metadata;
  factory: TableBuilderFactory;
  train: Table;
  holdout: Table;
  fresh: Table;
  rows: { train: string[][]; holdout: string[][]; fresh: string[][] };
}

/** train / holdout / an independent fresh sample of the same distribution, sharing categories. */
export function makeSets(nTrain = 2000, nHoldout = 1000, nFresh = 2000): Sets {
  const train = genRows(nTrain, 1, 0);
  const holdout = genRows(nHoldout, 2, 100_000);
  const fresh = genRows(nFresh, 3, 200_000);
  const meta = inferMetadata(HEADER, train, 'fraud');
  const factory = new TableBuilderFactory(meta);
  return {
    meta,
    factory,
    train: factory.fromRows(HEADER, train, 'train'),
    holdout: factory.fromRows(HEADER, holdout, 'holdout'),
    fresh: factory.fromRows(HEADER, fresh, 'fresh'),
    rows: { train, holdout, fresh },
  };
}

/** Each column permuted independently: marginals kept, every dependency destroyed. */
export function shuffleColumns(rows: string[][], seed: number): string[][] {
  const r = rng(seed);
  const out = rows.map((x) => x.slice());
  for (let j = 1; j < HEADER.length; j++) {
    const col = rows.map((x) => x[j]!);
    for (let i = col.length - 1; i > 0; i--) {
      const k = Math.floor(r() * (i + 1));
      [col[i], col[k]] = [col[k]!, col[i]!];
    }
    out.forEach((x, i) => (x[j] = col[i]!));
  }
  return out;
}
