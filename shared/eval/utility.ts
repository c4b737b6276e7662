// Machine-learning utility: train-on-synthetic / test-on-real (TSTR) against train-on-real /
// test-on-real (TRTR) on the holdout (Esteban et al. 2017), with the histogram GBDT and logistic
// regression, plus augmentation (real + synthetic minority rows vs real alone). The positive class
// is the least frequent target value in the real training data (one-vs-rest when multi-class).
// The decision threshold for precision/recall/F1 maximises F1 on a stratified 20% validation split
// of each model's TRAINING data; the holdout is only ever scored.
import type { Column, Table } from './table';
import { concatTables, dropColumn, takeRows } from './table';
import { stratifiedSplit } from './random';
import { aucRoc, bestF1Threshold, metricsAt, prAuc, rocCurve } from './auc';
import { trainGbdt, type GbdtOptions } from './gbdt';
import { trainLogistic } from './logistic';

export interface ClassifierMetrics {
  auc: number;
  prAuc: number;
  precision: number;
  recall: number;
  f1: number;
  /** Threshold on P(positive), chosen on a validation split of the training data. */
  threshold: number;
}

export interface UtilityReport {
  target: string;
  positiveClass: string;
  holdoutPositives: number;
  holdoutRows: number;
  gbdt: { tstr: ClassifierMetrics; trtr: ClassifierMetrics; augmented: ClassifierMetrics };
  logistic: { tstr: ClassifierMetrics; trtr: ClassifierMetrics };
  augmentation: { addedSyntheticPositives: number; deltaAuc: number; deltaPrAuc: number; deltaF1: number };
  warnings: string[];
  plots: { roc: Record<string, { fpr: number[]; tpr: number[] }> };
}

export interface UtilityOptions {
  seed?: number;
  /** The class scored one-vs-rest (a value of the target); default: the least frequent in the real train set. */
  positiveClass?: string;
  gbdt?: GbdtOptions;
  onProgress?: (step: string) => void;
}

/**
 * The positive class of the real target column: `wanted` when given (it must occur in the real
 * train set), else its least frequent value.
 */
export function positiveClassOf(c: Column, wanted?: string): { label: string; is: (t: Table) => Uint8Array } {
  if (c.kind === 'categorical') {
    const cnt = new Map<number, number>();
    for (let i = 0; i < c.codes.length; i++) cnt.set(c.codes[i]!, (cnt.get(c.codes[i]!) ?? 0) + 1);
    if (cnt.size < 2) throw new Error(`target "${c.name}" has a single value in the real data; utility needs two classes`);
    let best = -1;
    let bestN = Infinity;
    for (const [code, n] of cnt) if (n < bestN || (n === bestN && code > best)) [best, bestN] = [code, n];
    if (wanted !== undefined) {
      best = c.categories.indexOf(wanted);
      if (best < 0 || !cnt.has(best)) {
        const seen = [...cnt.keys()].map((k) => c.categories[k]!).sort();
        throw new Error(`positive class "${wanted}" does not occur in the real data's target "${c.name}" (values: ${seen.join(', ')})`);
      }
    }
    const label = c.categories[best]!;
    return {
      label,
      is: (t) => {
        const tc = t.columns.find((x) => x.name === c.name);
        if (!tc || tc.kind !== 'categorical') throw new Error(`target "${c.name}" missing or not categorical`);
        // Codes are shared across tables, but compare labels too in case a table has its own dictionary.
        const posCode = tc.categories === c.categories ? best : tc.categories.indexOf(label);
        return Uint8Array.from(tc.codes, (x) => (x === posCode ? 1 : 0));
      },
    };
  }
  const cnt = new Map<number, number>();
  for (let i = 0; i < c.values.length; i++) {
    const v = c.values[i]!;
    if (!Number.isNaN(v)) cnt.set(v, (cnt.get(v) ?? 0) + 1);
  }
  if (cnt.size !== 2) {
    throw new Error(`target "${c.name}" is numeric with ${cnt.size} distinct values; utility needs a binary or categorical target`);
  }
  const [[a, na], [b, nb]] = [...cnt.entries()] as [[number, number], [number, number]];
  let pos = na < nb || (na === nb && a > b) ? a : b;
  if (wanted !== undefined) {
    if (Number(wanted) !== a && Number(wanted) !== b) throw new Error(`positive class "${wanted}" does not occur in the real data's target "${c.name}" (values: ${a}, ${b})`);
    pos = Number(wanted);
  }
  return {
    label: String(pos),
    is: (t) => {
      const tc = t.columns.find((x) => x.name === c.name);
      if (!tc || tc.kind !== 'numeric') throw new Error(`target "${c.name}" missing or not numeric`);
      return Uint8Array.from(tc.values, (x) => (x === pos ? 1 : 0));
    },
  };
}

/** Below these many rows of the positive class, the report warns that its utility figures are noise. */
export const MIN_HOLDOUT_POSITIVES = 30;
export const MIN_TRAIN_POSITIVES = 50;

type Kind = 'gbdt' | 'logistic';

interface Fitted {
  metrics: ClassifierMetrics;
  roc: { fpr: number[]; tpr: number[] };
}

function count1(y: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]!;
  return s;
}

/** Fits `kind` on (X, y) with an F1-threshold validation split, scores the holdout. */
export function fitAndScore(kind: Kind, X: Table, y: Uint8Array, Xh: Table, yh: Uint8Array, seed: number, gbdt: GbdtOptions = {}): Fitted {
  const pos = count1(y);
  let holdScores: Float64Array;
  let threshold: number;
  if (pos === 0 || pos === y.length) {
    // A single-class training set cannot rank: constant scores (AUC 0.5), nothing flagged.
    holdScores = new Float64Array(Xh.nRows).fill(pos === 0 ? 0 : 1);
    threshold = pos === 0 ? 0.5 : 1;
  } else {
    const { a, b } = stratifiedSplit(y, 0.2, seed);
    const Xa = takeRows(X, a);
    const ya = Uint8Array.from(a, (i) => y[i]!);
    const Xb = takeRows(X, b);
    const yb = Uint8Array.from(b, (i) => y[i]!);
    const predict =
      kind === 'gbdt' ? trainGbdt(Xa, ya, { seed, ...gbdt }).predictProba : trainLogistic(Xa, ya).predictProba;
    threshold = bestF1Threshold(predict(Xb), yb);
    holdScores = predict(Xh);
  }
  const m = metricsAt(holdScores, yh, threshold);
  return {
    metrics: { auc: aucRoc(holdScores, yh), prAuc: prAuc(holdScores, yh), precision: m.precision, recall: m.recall, f1: m.f1, threshold },
    roc: rocCurve(holdScores, yh, 150),
  };
}

export function utilityMetrics(train: Table, holdout: Table, synthetic: Table, target: string, opts: UtilityOptions = {}): UtilityReport {
  const seed = opts.seed ?? 42;
  const progress = opts.onProgress ?? (() => {});
  const tcol = train.columns.find((c) => c.name === target);
  if (!tcol) throw new Error(`target "${target}" is not a column of the real data`);
  const pc = positiveClassOf(tcol, opts.positiveClass);
  const y = pc.is(train);
  const yh = pc.is(holdout);
  const ys = pc.is(synthetic);
  const warnings: string[] = [];
  if (count1(yh) === 0) throw new Error(`the holdout has no rows of the positive class "${pc.label}" of target "${target}"`);
  // Too few rows of the class and the figures are noise, not a result: say so next to them.
  const few = `of the class "${pc.label}" (one-vs-rest${tcol.kind === 'categorical' && tcol.categories.length > 2 ? ' of a multi-class target; --positive-class picks another' : ''})`;
  if (count1(yh) < MIN_HOLDOUT_POSITIVES) warnings.push(`the holdout has ${count1(yh)} rows ${few}: AUC, recall and precision on so few rows are mostly noise`);
  if (count1(y) < MIN_TRAIN_POSITIVES) warnings.push(`the real train set has ${count1(y)} rows ${few}: too few for the TRTR baseline to learn from`);
  if (count1(ys) === 0) warnings.push(`synthetic data has no rows of the positive class "${pc.label}": TSTR models cannot rank`);
  const X = dropColumn(train, target);
  const Xh = dropColumn(holdout, target);
  const Xs = dropColumn(synthetic, target);
  const roc: Record<string, { fpr: number[]; tpr: number[] }> = {};
  const run = (kind: Kind, name: string, A: Table, ya: Uint8Array): ClassifierMetrics => {
    progress(`${kind} ${name}`);
    const f = fitAndScore(kind, A, ya, Xh, yh, seed, opts.gbdt);
    roc[`${kind}.${name}`] = f.roc;
    return f.metrics;
  };
  const gbdtTrtr = run('gbdt', 'trtr', X, y);
  const gbdtTstr = run('gbdt', 'tstr', Xs, ys);
  const logTrtr = run('logistic', 'trtr', X, y);
  const logTstr = run('logistic', 'tstr', Xs, ys);

  // Augmentation: add synthetic positives, at most as many as it takes to balance the classes.
  const nPos = count1(y);
  const cap = Math.max(0, y.length - 2 * nPos);
  const synPos: number[] = [];
  for (let i = 0; i < ys.length && synPos.length < cap; i++) if (ys[i] === 1) synPos.push(i);
  let augmented: ClassifierMetrics;
  if (synPos.length === 0) {
    augmented = gbdtTrtr;
    roc['gbdt.augmented'] = roc['gbdt.trtr']!;
  } else {
    const Xa = concatTables(X, takeRows(Xs, synPos));
    const ya = new Uint8Array(Xa.nRows);
    ya.set(y);
    ya.fill(1, y.length);
    augmented = run('gbdt', 'augmented', Xa, ya);
  }
  return {
    target,
    positiveClass: pc.label,
    holdoutPositives: count1(yh),
    holdoutRows: holdout.nRows,
    gbdt: { tstr: gbdtTstr, trtr: gbdtTrtr, augmented },
    logistic: { tstr: logTstr, trtr: logTrtr },
    augmentation: {
      addedSyntheticPositives: synPos.length,
      deltaAuc: augmented.auc - gbdtTrtr.auc,
      deltaPrAuc: augmented.prAuc - gbdtTrtr.prAuc,
      deltaF1: augmented.f1 - gbdtTrtr.f1,
    },
    warnings,
    plots: { roc },
  };
}
