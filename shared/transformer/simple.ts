// The simple reversible transformer, built from the consortium schema alone (no data): numeric
// columns scaled linearly from their declared bounds to [-1, 1], categorical and boolean columns
// one-hot. Every bank builds the identical transformer from the same schema file.
import { isModelled, snapToStep, validateSchema, type ConsortiumSchema, type Row } from '../data/schema';
import type { DataTransformer, DiscreteSpan, OutputSpan } from './types';
import { argmax, categoriesOf } from './encoding';

interface ColumnPlan {
  index: number; // position in Row
  name: string;
  type: 'continuous' | 'integer' | 'datetime' | 'categorical' | 'boolean';
  min: number;
  max: number;
  categories: string[];
  nullable: boolean;
  /** Offset of the value span (tanh scalar or one-hot block). */
  offset: number;
  /** Offset of the [present, missing] indicator of a nullable numeric column, else -1. */
  missingOffset: number;
}

export class SimpleTransformer implements DataTransformer {
  readonly kind = 'simple';
  readonly spans: OutputSpan[] = [];
  readonly outputDim: number;
  private readonly plans: ColumnPlan[] = [];

  private constructor(readonly schema: ConsortiumSchema) {
    let offset = 0;
    schema.columns.forEach((c, index) => {
      if (!isModelled(c)) return;
      const nullable = Boolean(c.nullable);
      const plan: ColumnPlan = {
        index,
        name: c.name,
        type: c.type,
        min: c.min ?? 0,
        max: c.max ?? 1,
        categories: categoriesOf(c),
        nullable,
        offset,
        missingOffset: -1,
      };
      if (c.type === 'continuous' || c.type === 'integer' || c.type === 'datetime') {
        this.spans.push({ column: c.name, kind: 'tanh', dim: 1, offset });
        offset += 1;
        if (nullable) {
          plan.missingOffset = offset;
          this.spans.push({ column: c.name, kind: 'softmax', dim: 2, offset });
          offset += 2;
        }
      } else {
        // A nullable discrete column gets one extra category for "missing".
        const dim = plan.categories.length + (nullable ? 1 : 0);
        this.spans.push({ column: c.name, kind: 'softmax', dim, offset });
        offset += dim;
      }
      this.plans.push(plan);
    });
    this.outputDim = offset;
    if (this.outputDim === 0) throw new Error('the schema has no modelled columns');
  }

  static fromSchema(schema: ConsortiumSchema): SimpleTransformer {
    return new SimpleTransformer(schema);
  }

  static fromJSON(json: unknown): SimpleTransformer {
    const o = json as { kind?: string; schema?: unknown };
    if (!o || o.kind !== 'simple') throw new Error(`not a simple transformer state (kind ${JSON.stringify(o?.kind)})`);
    return new SimpleTransformer(validateSchema(o.schema));
  }

  toJSON(): { kind: string; schema: ConsortiumSchema } {
    return { kind: this.kind, schema: this.schema };
  }

  discreteSpans(): DiscreteSpan[] {
    return this.plans
      .filter((p) => p.type === 'categorical' || p.type === 'boolean')
      .map((p) => ({ column: p.name, offset: p.offset, dim: p.categories.length + (p.nullable ? 1 : 0), categories: p.nullable ? [...p.categories, ''] : [...p.categories] }));
  }

  transform(rows: readonly Row[]): Float32Array {
    const d = this.outputDim;
    const out = new Float32Array(rows.length * d);
    rows.forEach((row, r) => {
      const base = r * d;
      for (const p of this.plans) {
        const v = row[p.index];
        if (p.type === 'continuous' || p.type === 'integer' || p.type === 'datetime') {
          if (v === null || v === undefined) {
            if (!p.nullable) throw new Error(`row ${r}: missing value in non-nullable column '${p.name}'`);
            out[base + p.missingOffset + 1] = 1;
            continue;
          }
          const x = Math.min(p.max, Math.max(p.min, Number(v)));
          out[base + p.offset] = (2 * (x - p.min)) / (p.max - p.min) - 1;
          if (p.nullable) out[base + p.missingOffset] = 1;
        } else {
          let j: number;
          if (v === null || v === undefined) {
            if (!p.nullable) throw new Error(`row ${r}: missing value in non-nullable column '${p.name}'`);
            j = p.categories.length;
          } else {
            j = p.categories.indexOf(String(v));
            if (j < 0) throw new Error(`row ${r}: '${v}' is not a category of '${p.name}'`);
          }
          out[base + p.offset + j] = 1;
        }
      }
    });
    return out;
  }

  inverse(data: Float32Array, n: number): Row[] {
    const d = this.outputDim;
    if (data.length !== n * d) throw new Error(`expected ${n} x ${d} values, got ${data.length}`);
    const rows: Row[] = [];
    for (let r = 0; r < n; r++) {
      const base = r * d;
      const row: Row = new Array(this.schema.columns.length).fill(null);
      for (const p of this.plans) {
        if (p.type === 'continuous' || p.type === 'integer' || p.type === 'datetime') {
          if (p.nullable && argmax(data, base + p.missingOffset, 2) === 1) continue;
          const s = Math.max(-1, Math.min(1, data[base + p.offset]!));
          let x = p.min + ((s + 1) / 2) * (p.max - p.min);
          if (p.type === 'integer') x = Math.round(x);
          row[p.index] = snapToStep(this.schema.columns[p.index]!, Math.min(p.max, Math.max(p.min, x)));
        } else {
          const j = argmax(data, base + p.offset, p.categories.length + (p.nullable ? 1 : 0));
          if (j >= p.categories.length) continue; // the "missing" category
          row[p.index] = p.type === 'boolean' ? j : p.categories[j]!;
        }
      }
      rows.push(row);
    }
    return rows;
  }
}
