// Pair tables on the wire: RoundStart.pairTargets (the generator's targets), ClientUpdate.pairCounts
// (a bank's DP-noised two-way counts) and TrainingConfig.gSteps.
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, LIMITS, type ClientUpdateMessage, type PairTable, type RoundStartMessage } from '../../protocol/index';
import { config, decodeRaw, expectCode, pairTables, pb, rawFrame, reencodeFrame, spec, specTensors, WIRE_TYPE } from './helpers';

const rs = (patch: Partial<RoundStartMessage> = {}): RoundStartMessage => ({ type: 'roundStart', roundId: 2, modelVersion: 1, weights: specTensors(), config: config(), deadlineMs: 1_800_000_000_000, ...patch });
const upd = (patch: Partial<ClientUpdateMessage> = {}): ClientUpdateMessage => ({ type: 'clientUpdate', roundId: 2, modelVersion: 1, sampleCount: 500, tensors: specTensors(), metrics: {}, epsilonSpent: 0.5, delta: 1e-5, ...patch });
const masked = (): Partial<ClientUpdateMessage> => ({ tensors: [], maskedTensors: spec.map((t) => ({ name: t.name, shape: t.shape, data: new Uint32Array(t.shape.reduce((a, b) => a * b, 1)).fill(7) })) });
const enc = (m: RoundStartMessage | ClientUpdateMessage) => encodeFrame(m, { sender: m.type === 'roundStart' ? 'coordinator' : 'bank-a' });
const roundTrip = <M extends RoundStartMessage | ClientUpdateMessage>(m: M): M => decodeFrame(enc(m)) as unknown as M;
const targets = (): PairTable[] => pairTables().map((t) => ({ ...t, values: t.values.map(Math.abs) }));
const table = (aOffset: number, aDim: number, bOffset: number, bDim: number, fill = 1): PairTable => ({ aOffset, aDim, bOffset, bDim, values: new Array(aDim * bDim).fill(fill) });

// Raw frames, for what the encoder itself refuses to write.
const rawRs = (body: Record<string, unknown>) => {
  const { config: c, ...rest } = rs();
  const weights = rest.weights.map((t) => ({ name: t.name, shape: t.shape, data: new Uint8Array(t.data.buffer.slice(0)) }));
  return rawFrame('RoundStart', WIRE_TYPE.roundStart, { ...rest, weights, config: { ...c, dp: { ...c.dp } }, ...body }, { roundId: 2, sender: 'coordinator' });
};
const rawUpd = (body: Record<string, unknown>) => {
  const { tensors, ...rest } = upd();
  return rawFrame('ClientUpdate', WIRE_TYPE.clientUpdate, { ...rest, tensors: tensors.map((t) => ({ name: t.name, shape: t.shape, data: new Uint8Array(t.data.buffer.slice(0)) })), ...body }, { roundId: 2 });
};
const bodyOf = (frame: Uint8Array): Uint8Array => decodeRaw(frame).body as Uint8Array;
const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
};
/** Key + length of a length-delimited field. */
const lenField = (field: number, len: number): number[] => [...varint(field * 8 + 2), ...varint(len)];
/** A PairTable body with its values packed (wire type 2): n doubles of 1.0. */
const packedTable = (aOffset: number, aDim: number, bOffset: number, bDim: number, n: number): Uint8Array => {
  const values = new Float64Array(n).fill(1);
  const head = [0x08, ...varint(aOffset), 0x10, ...varint(aDim), 0x18, ...varint(bOffset), 0x20, ...varint(bDim), ...lenField(5, n * 8)];
  const out = new Uint8Array(head.length + n * 8);
  out.set(head);
  out.set(new Uint8Array(values.buffer), head.length);
  return out;
};
/** A valid body with extra raw field bytes appended (protobuf merges repeated fields across the body). */
const append = (frame: Uint8Array, ...parts: (number[] | Uint8Array)[]): Uint8Array => {
  const body = bodyOf(frame);
  const size = parts.reduce((s, p) => s + p.length, body.length);
  const out = new Uint8Array(size);
  out.set(body);
  let at = body.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return reencodeFrame(frame, { body: out });
};

describe('pair tables: round trip', () => {
  it('round-trips a RoundStart with pair targets and generator steps', () => {
    const msg = rs({ pairTargets: targets(), config: { ...config(), gSteps: 4 } });
    const out = roundTrip(msg);
    expect(out.pairTargets).toEqual(msg.pairTargets);
    expect(out.config.gSteps).toBe(4);
    expect(out.pairTargets![0].values[5]).toBe(1e-3); // doubles, not float32
  });

  it('round-trips pair counts (negative, fractional: noise) with a plain and with a masked update', () => {
    const plain = roundTrip(upd({ pairCounts: { noiseStd: 20.5, tables: pairTables() } }));
    expect(plain.pairCounts).toEqual({ noiseStd: 20.5, tables: pairTables() });
    expect(plain.pairCounts!.tables[0].values[1]).toBe(-0.75);
    const m = upd({ ...masked(), pairCounts: { noiseStd: 3.25, tables: pairTables() } });
    const out = decodeFrame(enc(m), { refusePlainUpdates: true, modelSpec: spec }) as ClientUpdateMessage;
    expect(out.maskedTensors).toHaveLength(2);
    expect(out.pairCounts).toEqual({ noiseStd: 3.25, tables: pairTables() });
  });

  it('writes gSteps 1 when absent, reads 0 on the wire as 1, and refuses more than LIMITS.maxGSteps', () => {
    const body = pb('RoundStart').decode(bodyOf(enc(rs()))) as unknown as { config: { gSteps: number } };
    expect(body.config.gSteps).toBe(1);
    expect((decodeFrame(rawRs({ config: { ...config(), gSteps: 0 } })) as RoundStartMessage).config.gSteps).toBe(1);
    expect((decodeFrame(rawRs({ config: { ...config(), gSteps: 100 } })) as RoundStartMessage).config.gSteps).toBe(100);
    expect(LIMITS.maxGSteps).toBe(100);
    expectCode(() => decodeFrame(rawRs({ config: { ...config(), gSteps: 101 } })), 'INVALID_FIELD', /roundStart\.config\.gSteps is 101 \(at most 100\)/);
    expectCode(() => enc(rs({ config: { ...config(), gSteps: 101 } })), 'INVALID_FIELD', /gSteps is 101/);
    expectCode(() => enc(rs({ config: { ...config(), gSteps: 2.5 } })), 'INVALID_FIELD', /gSteps must be a uint32/);
  });

  it('decodes messages of a peer without the fields with them absent', () => {
    const old = decodeFrame(rawRs({})) as RoundStartMessage;
    expect('pairTargets' in old).toBe(false);
    expect(old.config.gSteps).toBe(1);
    const u = decodeFrame(rawUpd({})) as ClientUpdateMessage;
    expect('pairCounts' in u).toBe(false);
    // Empty lists from a new peer read the same; nothing is written for them.
    expect('pairTargets' in roundTrip(rs({ pairTargets: [] }))).toBe(false);
    expect('pairCounts' in roundTrip(upd({ pairCounts: { noiseStd: 0, tables: [] } }))).toBe(false);
    expect(bodyOf(enc(upd({ pairCounts: { noiseStd: 0, tables: [] } })))).toEqual(bodyOf(enc(upd())));
  });
});

describe('pair tables: rejections', () => {
  const counts = (tables: PairTable[], noiseStd = 2) => upd({ pairCounts: { noiseStd, tables } });

  it('refuses non-finite values', () => {
    const t = pairTables();
    t[0].values[1] = Number.NaN;
    expectCode(() => enc(counts(t)), 'NON_FINITE', 'clientUpdate.pairCounts[0].values[1] is NaN (must be finite)');
    expectCode(() => decodeFrame(rawUpd({ pairCounts: t, pairCountsNoiseStd: 2 })), 'NON_FINITE', 'clientUpdate.pairCounts[0].values[1] is NaN');
    const u = targets();
    u[1].values[5] = Number.POSITIVE_INFINITY;
    expectCode(() => enc(rs({ pairTargets: u })), 'NON_FINITE', 'roundStart.pairTargets[1].values[5] is Infinity (must be finite)');
    expectCode(() => decodeFrame(rawRs({ pairTargets: u })), 'NON_FINITE', 'roundStart.pairTargets[1].values[5] is Infinity');
  });

  it('refuses a table whose values do not fill aDim × bDim', () => {
    const tables = [...pairTables(), table(10, 4, 20, 4), { ...table(30, 4, 40, 4), values: new Array(12).fill(1) }];
    expectCode(() => enc(counts(tables)), 'SHAPE_MISMATCH', 'clientUpdate.pairCounts[3].values has 12 values, expected 4 × 4 = 16');
    expectCode(() => decodeFrame(rawUpd({ pairCounts: tables, pairCountsNoiseStd: 2 })), 'SHAPE_MISMATCH', 'clientUpdate.pairCounts[3].values has 12 values, expected 4 × 4 = 16');
    expectCode(() => decodeFrame(rawRs({ pairTargets: [{ ...table(0, 2, 2, 2), values: [] }] })), 'SHAPE_MISMATCH', 'roundStart.pairTargets[0].values has 0 values, expected 2 × 2 = 4');
  });

  it('refuses empty, overlapping and unordered spans', () => {
    expectCode(() => enc(counts([{ aOffset: 0, aDim: 0, bOffset: 2, bDim: 3, values: [] }])), 'MISSING_FIELD', 'clientUpdate.pairCounts[0].aDim is missing');
    expectCode(() => decodeFrame(rawRs({ pairTargets: [{ aOffset: 0, aDim: 2, bOffset: 2, values: [] }] })), 'MISSING_FIELD', 'roundStart.pairTargets[0].bDim is missing');
    expectCode(() => enc(counts([table(0, 3, 2, 2)])), 'INVALID_FIELD', "clientUpdate.pairCounts[0]: span a [0, 3) must end at or before span b's offset 2");
    expectCode(() => enc(counts([table(5, 2, 0, 2)])), 'INVALID_FIELD', "span a [5, 7) must end at or before span b's offset 0");
    expectCode(() => enc(rs({ pairTargets: [table(4, 2, 4, 2)] })), 'INVALID_FIELD', "roundStart.pairTargets[0]: span a [4, 6) must end at or before span b's offset 4");
    expectCode(() => decodeFrame(rawUpd({ pairCounts: [table(0, 3, 1, 2)], pairCountsNoiseStd: 2 })), 'INVALID_FIELD', /pairCounts\[0\]: span a \[0, 3\)/);
    // Adjacent spans are disjoint.
    expect(roundTrip(counts([table(0, 3, 3, 2)])).pairCounts!.tables).toHaveLength(1);
  });

  it('refuses the same pair of spans twice', () => {
    expectCode(() => enc(rs({ pairTargets: [table(0, 2, 5, 2), table(2, 3, 5, 2), table(0, 2, 5, 2, 3)] })), 'INVALID_FIELD', 'roundStart.pairTargets[2] repeats the pair of spans at offsets 0 and 5 (roundStart.pairTargets[0])');
    expectCode(() => decodeFrame(rawUpd({ pairCounts: [table(0, 2, 5, 2), table(0, 2, 5, 2)], pairCountsNoiseStd: 2 })), 'INVALID_FIELD', 'clientUpdate.pairCounts[1] repeats the pair of spans at offsets 0 and 5');
  });

  it('refuses negative target weights and targets that sum to zero; counts may be negative', () => {
    expectCode(() => enc(rs({ pairTargets: pairTables() })), 'INVALID_FIELD', 'roundStart.pairTargets[0].values[1] is -0.75 (target weights must be ≥ 0)');
    expectCode(() => decodeFrame(rawRs({ pairTargets: [table(0, 2, 2, 2, 1), table(4, 1, 5, 3, 0)] })), 'INVALID_FIELD', 'roundStart.pairTargets[1] sums to 0 (must be positive and finite to normalise)');
    expectCode(() => enc(rs({ pairTargets: [table(0, 2, 2, 2, 1e308)] })), 'INVALID_FIELD', 'roundStart.pairTargets[0] sums to Infinity');
    expect(roundTrip(counts([table(0, 2, 2, 2, -1)])).pairCounts!.tables[0].values).toEqual([-1, -1, -1, -1]);
  });

  it('requires a positive finite noise sd exactly when there are pair counts', () => {
    expectCode(() => enc(counts(pairTables(), 0)), 'MISSING_FIELD', 'clientUpdate.pairCountsNoiseStd is missing: un-noised pair counts may not leave a bank');
    expectCode(() => decodeFrame(rawUpd({ pairCounts: pairTables() })), 'MISSING_FIELD', /pairCountsNoiseStd is missing/);
    expectCode(() => enc(counts(pairTables(), Number.NaN)), 'INVALID_FIELD', 'clientUpdate.pairCountsNoiseStd must be a positive finite number (got NaN)');
    expectCode(() => enc(counts(pairTables(), -2)), 'INVALID_FIELD', '(got -2)');
    expectCode(() => decodeFrame(rawUpd({ pairCounts: pairTables(), pairCountsNoiseStd: Number.POSITIVE_INFINITY })), 'INVALID_FIELD', '(got Infinity)');
    expectCode(() => enc(counts([], 2)), 'INVALID_FIELD', 'clientUpdate.pairCountsNoiseStd is 2 but clientUpdate.pairCounts is empty');
    expectCode(() => decodeFrame(rawUpd({ pairCountsNoiseStd: 0.5 })), 'INVALID_FIELD', 'clientUpdate.pairCountsNoiseStd is 0.5 but clientUpdate.pairCounts is empty');
  });

  it('refuses more than LIMITS.maxPairTables tables, on encode and on the raw bytes before they are materialised', () => {
    const many = Array.from({ length: LIMITS.maxPairTables + 1 }, (_, i) => table(0, 1, i + 1, 1));
    expectCode(() => enc(counts(many)), 'INVALID_FIELD', 'clientUpdate.pairCounts has 4097 tables (at most 4096)');
    expect(roundTrip(counts(many.slice(0, LIMITS.maxPairTables))).pairCounts!.tables).toHaveLength(4096);
    // 4097 empty entries (2 bytes each) on a valid body: the pre-scan's count, not the decoder's.
    const empty = (field: number) => new Uint8Array(Array.from({ length: LIMITS.maxPairTables + 1 }, () => lenField(field, 0)).flat());
    expectCode(() => decodeFrame(append(rawUpd({}), empty(16))), 'INVALID_FIELD', 'number of clientUpdate.pairCounts tables exceeds the limit of 4096');
    expectCode(() => decodeFrame(append(rawRs({}), empty(18))), 'INVALID_FIELD', 'number of roundStart.pairTargets tables exceeds the limit of 4096');
  });

  it('refuses a table over LIMITS.maxPairCells cells, packed or not, before protobufjs reads its values', () => {
    expectCode(() => enc(counts([table(0, 257, 257, 256)])), 'INVALID_FIELD', 'clientUpdate.pairCounts[0] has 257 × 256 = 65792 cells (at most 65536)');
    expect(roundTrip(rs({ pairTargets: [table(0, 256, 256, 256)] })).pairTargets![0].values).toHaveLength(LIMITS.maxPairCells);
    // One value per key (as this protobufjs writes them), and packed: 8 bytes each.
    const unpacked = rawUpd({ pairCounts: [{ aOffset: 0, aDim: 1, bOffset: 1, bDim: 1, values: new Array(LIMITS.maxPairCells + 1).fill(1) }], pairCountsNoiseStd: 2 });
    expectCode(() => decodeFrame(unpacked), 'INVALID_FIELD', 'cells of one clientUpdate.pairCounts table exceeds the limit of 65536');
    const packed = packedTable(0, 1, 1, 1, LIMITS.maxPairCells + 1);
    expectCode(() => decodeFrame(append(rawRs({}), lenField(18, packed.length), packed)), 'INVALID_FIELD', 'cells of one roundStart.pairTargets table exceeds the limit of 65536');
    // A full table packed is within the limit (counted as bytes / 8, not per byte).
    const full = packedTable(0, 256, 256, 256, LIMITS.maxPairCells);
    expect((decodeFrame(append(rawRs({}), lenField(18, full.length), full)) as RoundStartMessage).pairTargets![0].values).toHaveLength(LIMITS.maxPairCells);
    const bad = new Uint8Array([0x08, 0, 0x10, 1, 0x18, 1, 0x20, 1, ...lenField(5, 7), 0, 0, 0, 0, 0, 0xf0, 0x3f]);
    expectCode(() => decodeFrame(append(rawRs({}), lenField(18, bad.length), bad)), 'MALFORMED', 'packs 7 bytes, not a whole number of doubles');
  });

  it('refuses more than LIMITS.maxPairCellsTotal cells over all tables of a message', () => {
    const n = Math.floor(LIMITS.maxPairCellsTotal / LIMITS.maxPairCells) + 1; // 17 full tables
    const big = Array.from({ length: n }, (_, i) => table(0, 256, 256 * (i + 1), 256));
    expectCode(() => enc(rs({ pairTargets: big })), 'INVALID_FIELD', 'roundStart.pairTargets has over 1048576 cells in all (at roundStart.pairTargets[16])');
    expect(roundTrip(rs({ pairTargets: big.slice(0, n - 1) })).pairTargets).toHaveLength(n - 1);
    const parts = big.flatMap((t) => {
      const b = packedTable(t.aOffset, t.aDim, t.bOffset, t.bDim, t.values.length);
      return [lenField(16, b.length), b];
    });
    expectCode(() => decodeFrame(append(rawUpd({ pairCountsNoiseStd: 2 }), ...parts)), 'INVALID_FIELD', 'cells of all clientUpdate.pairCounts tables exceed the limit of 1048576');
  });

  it('refuses a secure-aggregation cohort over LIMITS.maxSecAggBanks before protobufjs builds its strings', () => {
    // SecAggParams with 300 one-letter cohort entries (field 6), as the coordinator's RoundStart field 6.
    const cohort = Array.from({ length: LIMITS.maxSecAggBanks + 45 }, () => [...lenField(6, 1), 0x61]).flat();
    expectCode(() => decodeFrame(append(rawRs({}), lenField(6, cohort.length), cohort)), 'INVALID_FIELD', 'number of roundStart.secagg.cohort banks exceeds the limit of 255');
    const one = [...lenField(6, 1), 0x61];
    expectCode(() => decodeFrame(append(rawRs({}), lenField(6, one.length), one, lenField(6, one.length), one)), 'INVALID_FIELD', 'roundStart.secagg messages exceeds the limit of 1');
  });

  it('refuses a field under the wrong wire type, which would make protobufjs parse its payload as fields the pre-scan skipped', () => {
    // RoundStart.round_id (a varint) sent length-delimited around 5000 empty pair targets.
    const payload = Array.from({ length: 5000 }, () => lenField(18, 0)).flat();
    const body = new Uint8Array([...lenField(1, payload.length), ...payload]);
    const decoded = pb('RoundStart').decode(body) as unknown as { pairTargets: unknown[] };
    expect(decoded.pairTargets).toHaveLength(5000); // what protobufjs alone would build
    expectCode(() => decodeFrame(reencodeFrame(rawRs({}), { body })), 'MALFORMED', 'RoundStart body field 1 has wire type 2 (expected 0)');
    // Inside a table too: a_dim sent as a double.
    const t = new Uint8Array([0x08, 0, 0x11, ...new Array(8).fill(0)]);
    expectCode(() => decodeFrame(append(rawUpd({ pairCountsNoiseStd: 2 }), lenField(16, t.length), t)), 'MALFORMED', 'field 2 has wire type 1 (expected 0)');
  });

  it('counts packed category weights as bytes / 8 (a packed 1000-category column is within the limit)', () => {
    const values = new Float64Array(1000).fill(1);
    const column = new Uint8Array([0x0a, 1, 0x63, ...lenField(2, values.byteLength), ...new Uint8Array(values.buffer)]);
    const out = decodeFrame(append(rawRs({}), lenField(16, column.length), column)) as RoundStartMessage;
    expect(out.categoryWeights![0].values).toHaveLength(1000);
    const over = new Float64Array(LIMITS.maxCategories + 1).fill(1);
    const overColumn = new Uint8Array([0x0a, 1, 0x63, ...lenField(2, over.byteLength), ...new Uint8Array(over.buffer)]);
    expectCode(() => decodeFrame(append(rawRs({}), lenField(16, overColumn.length), overColumn)), 'INVALID_FIELD', 'categories per column exceeds the limit of 4096');
  });
});
