// A bank's privacy ledger: every differentially private release is charged here BEFORE it is
// released, composed in Rényi DP (per order, summed; Mironov 2017 Prop. 1) and converted to
// (ε, δ) with the improved conversion (shared/privacy/rdp). Persisted as JSON lines, one entry per
// line, tamper-evident:
//   - each entry carries `prev` = SHA-256 of the previous entry's canonical body (a hash chain),
//     so editing, deleting or reordering entries breaks the chain;
//   - each entry carries an HMAC-SHA256 of its own hash under a local 32-byte key (file mode 0600),
//     so the chain cannot be recomputed by someone who can write the ledger but not read the key;
//   - a `.head` sidecar holds the latest (count, hash) under the same HMAC, so truncating the tail
//     is detected too.
// Limits (documented for the security review): someone who can read the key can rewrite history,
// and restoring an older (ledger, head) pair together is a rollback no local check can see; the
// coordinator's record of reported spend (monotone per bank) is the external anchor for that.
//
// Client-level (DP-FedAvg) entries are composed into the same record-level total: a bank-level
// guarantee implies the same guarantee for each of its records, so summing is conservative.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, writeFileSync, writeSync, chmodSync } from 'node:fs';
import {
  DEFAULT_ORDERS,
  checkDelta,
  checkNoiseMultiplier,
  checkSampleRate,
  checkSteps,
  computeRdp,
  rdpGaussian,
  rdpToEpsilon,
  type PrivacySpent,
} from '../../shared/privacy/rdp';
import { skellamRdpCurve } from '../../shared/privacy/skellam';
import { writeFileAtomic } from '../../shared/fs/atomic-write';

export type SampledGaussianParams = { q: number; sigma: number; steps: number };
export type GaussianParams = { sigma: number; sensitivity: number };

/** One round of distributed Skellam noise in secure aggregation (shared/privacy/skellam.ts): sensitivities and the guaranteed Sk(mu) of the sum, ring units. */
export type SkellamParams = { l1Sensitivity: number; l2Sensitivity: number; mu: number };

/**
 * `release`: for a release the agent keeps and may send again (the row count, the summary, the pair
 * counts), releaseDigest of the noisy values as released. Part of the entry's hash, so a cached
 * release can be checked against the ledger before it is re-sent (hasRelease): an edited cache,
 * e.g. one holding the exact counts, matches no charge.
 */
export type LedgerEntryInput =
  | { kind: 'dp-sgd' | 'client-level'; params: SampledGaussianParams; round?: number; note?: string; release?: string }
  | { kind: 'histogram' | 'counts'; params: GaussianParams; round?: number; note?: string; release?: string }
  | { kind: 'distributed-skellam'; params: SkellamParams; round?: number; note?: string; release?: string };

export type LedgerEntry = LedgerEntryInput & {
  seq: number;
  /** ISO-8601 time of the charge. */
  ts: string;
  note: string;
  /** SHA-256 (hex) of the previous entry's canonical body; GENESIS for the first. */
  prev: string;
  /** SHA-256 (hex) of this entry's canonical body (everything above). */
  hash: string;
  /** HMAC-SHA256 (hex) of `hash` under the ledger key. */
  mac: string;
};

export const LEDGER_GENESIS = createHash('sha256').update('fedsynth-privacy-ledger-v1').digest('hex');

/** Default budget of a bank: ε = 1. */
export const DEFAULT_EPSILON_MAX = 1;

/** Default δ for a bank with n records: min(1e-5, 1/(10·n)) (δ well below 1/n). */
export function defaultDelta(n?: number): number {
  if (n === undefined) return 1e-5;
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`record count n must be an integer ≥ 1, got ${String(n)}`);
  return Math.min(1e-5, 1 / (10 * n));
}

export interface Budget {
  epsilonMax: number;
  delta: number;
}

export class BudgetExceededError extends Error {
  override name = 'BudgetExceededError';
  constructor(
    readonly spent: number,
    readonly wouldBe: number,
    readonly budget: number,
    readonly delta: number,
    readonly entry: LedgerEntryInput,
  ) {
    super(
      `privacy budget exceeded: ${describe(entry)} would raise ε from ${spent.toFixed(4)} to ${wouldBe.toFixed(4)} ` +
        `at δ = ${delta}, past this bank's budget --epsilon-max ${budget}. Nothing was released. ` +
        `Raise the budget only if your privacy policy allows it, or use more noise / fewer steps.`,
    );
  }
}

export class LedgerTamperedError extends Error {
  override name = 'LedgerTamperedError';
}

function describe(e: LedgerEntryInput): string {
  // The note says which release it is (the row count, the summary, the label calibration...).
  const what = e.note ? `${e.kind} [${e.note}]` : e.kind;
  if (e.kind === 'distributed-skellam') {
    const p = e.params;
    return `${what} (Skellam μ = ${p.mu.toExponential(3)}, Δ2 = ${p.l2Sensitivity.toExponential(3)}, Δ1 = ${p.l1Sensitivity.toExponential(3)})`;
  }
  if (e.kind === 'dp-sgd' || e.kind === 'client-level') {
    const p = e.params as SampledGaussianParams;
    return `${what} (${p.steps} steps, q = ${p.q}, σ = ${p.sigma})`;
  }
  const p = e.params as GaussianParams;
  return `${what} (Gaussian σ = ${p.sigma}, sensitivity ${p.sensitivity})`;
}

/** Deterministic JSON: object keys sorted recursively (so the hash does not depend on key order). */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

function bodyOf(e: Omit<LedgerEntry, 'hash' | 'mac'>): Record<string, unknown> {
  // `release` undefined (every entry before it existed) leaves the canonical body, and so the hash, as it was.
  return { seq: e.seq, ts: e.ts, kind: e.kind, params: e.params, round: e.round, note: e.note, release: e.release, prev: e.prev };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** SHA-256 (hex) of a released value's canonical JSON: what a ledger entry's `release` records. */
export function releaseDigest(value: unknown): string {
  return sha256(canonical(value));
}

function validateEntry(e: LedgerEntryInput): void {
  if (!e || typeof e !== 'object') throw new TypeError('ledger entry must be an object');
  if (e.release !== undefined && !(typeof e.release === 'string' && /^[0-9a-f]{64}$/.test(e.release))) {
    throw new TypeError(`ledger entry's release must be a SHA-256 digest (64 hex digits), got ${JSON.stringify(e.release)}`);
  }
  const p = e.params as Record<string, unknown> | undefined;
  if (!p || typeof p !== 'object') throw new TypeError(`ledger entry of kind ${String(e.kind)} needs params`);
  switch (e.kind) {
    case 'dp-sgd':
    case 'client-level': {
      const { q, sigma, steps } = p as SampledGaussianParams;
      checkSampleRate(q);
      checkNoiseMultiplier(sigma);
      checkSteps(steps);
      break;
    }
    case 'histogram':
    case 'counts': {
      const { sigma, sensitivity } = p as GaussianParams;
      checkNoiseMultiplier(sigma);
      if (typeof sensitivity !== 'number' || !Number.isFinite(sensitivity) || sensitivity < 0) {
        throw new RangeError(`${e.kind} entry: sensitivity must be a finite number ≥ 0, got ${String(sensitivity)}`);
      }
      break;
    }
    case 'distributed-skellam': {
      const { l1Sensitivity, l2Sensitivity, mu } = p as SkellamParams;
      for (const [k, v] of Object.entries({ l1Sensitivity, l2Sensitivity, mu })) {
        if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new RangeError(`distributed-skellam entry: ${k} must be a finite number > 0, got ${String(v)}`);
      }
      break;
    }
    default:
      throw new RangeError(`unknown ledger entry kind ${JSON.stringify((e as { kind: unknown }).kind)} (expected dp-sgd, histogram, counts, client-level or distributed-skellam)`);
  }
  if (e.round !== undefined && (!Number.isSafeInteger(e.round) || e.round < 0)) throw new RangeError(`round must be a non-negative integer, got ${String(e.round)}`);
  if (e.note !== undefined && typeof e.note !== 'string') throw new TypeError('note must be a string');
}

/** RDP curve of one entry over `orders`. */
export function entryRdp(e: LedgerEntryInput, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  validateEntry(e);
  if (e.kind === 'distributed-skellam') return skellamRdpCurve(e.params, 1, orders);
  if (e.kind === 'dp-sgd' || e.kind === 'client-level') {
    const p = e.params as SampledGaussianParams;
    return computeRdp(p.q, p.sigma, p.steps, orders);
  }
  const p = e.params as GaussianParams;
  return rdpGaussian(p.sigma, p.sensitivity, orders);
}

export interface OpenOptions {
  /** HMAC key file; default `<ledger>.key`. Created (mode 0600) with a new ledger. */
  keyFile?: string;
  /** Create the ledger (and key) if missing; default true. If false, a missing ledger is an error. */
  create?: boolean;
  orders?: readonly number[];
  /** Clock, for tests. */
  now?: () => Date;
}

export class PrivacyLedger {
  private readonly list: LedgerEntry[] = [];
  private cumulative: number[];

  private constructor(
    readonly file: string,
    readonly keyFile: string,
    private readonly key: Buffer,
    readonly orders: readonly number[],
    private readonly now: () => Date,
  ) {
    this.cumulative = new Array<number>(orders.length).fill(0);
  }

  /** Opens (or creates) the ledger at `file` and verifies the whole chain; throws LedgerTamperedError if broken. */
  static open(file: string, opts: OpenOptions = {}): PrivacyLedger {
    const keyFile = opts.keyFile ?? `${file}.key`;
    const exists = existsSync(file);
    if (!exists && opts.create === false) throw new Error(`privacy ledger ${file} does not exist`);
    let key: Buffer;
    if (existsSync(keyFile)) {
      key = readKey(keyFile);
    } else {
      if (exists) {
        throw new LedgerTamperedError(`privacy ledger ${file} exists but its key file ${keyFile} is missing: the ledger cannot be verified; refusing to continue`);
      }
      key = randomBytes(32);
      writeFileSync(keyFile, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
      chmodSync(keyFile, 0o600);
    }
    const ledger = new PrivacyLedger(file, keyFile, key, opts.orders ?? DEFAULT_ORDERS, opts.now ?? (() => new Date()));
    if (exists) ledger.load();
    else {
      writeFileSync(file, '', { mode: 0o600, flag: 'wx' });
      ledger.writeHead();
    }
    return ledger;
  }

  private mac(hash: string): string {
    return createHmac('sha256', this.key).update(hash).digest('hex');
  }

  private load(): void {
    const text = readFileSync(this.file, 'utf8');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    let prev = LEDGER_GENESIS;
    for (let i = 0; i < lines.length; i++) {
      const where = `privacy ledger ${this.file}, line ${i + 1}`;
      let e: LedgerEntry;
      try {
        e = JSON.parse(lines[i]) as LedgerEntry;
      } catch {
        throw new LedgerTamperedError(`${where}: not valid JSON (edited or corrupted); refusing to continue`);
      }
      if (e.seq !== i) throw new LedgerTamperedError(`${where}: sequence number ${String(e.seq)} where ${i} was expected (entry deleted or reordered); refusing to continue`);
      if (e.prev !== prev) throw new LedgerTamperedError(`${where}: hash chain broken (previous-entry hash does not match: an entry was edited, deleted or reordered); refusing to continue`);
      const hash = sha256(canonical(bodyOf(e)));
      if (hash !== e.hash) throw new LedgerTamperedError(`${where}: entry content does not match its hash (edited); refusing to continue`);
      if (!safeEqualHex(this.mac(hash), e.mac)) throw new LedgerTamperedError(`${where}: HMAC does not verify under ${this.keyFile} (entry forged or key replaced); refusing to continue`);
      try {
        validateEntry(e);
      } catch (err) {
        throw new LedgerTamperedError(`${where}: invalid entry (${(err as Error).message}); refusing to continue`);
      }
      this.push(e);
      prev = hash;
    }
    this.checkHead();
  }

  private get headFile(): string {
    return `${this.file}.head`;
  }

  private checkHead(): void {
    if (!existsSync(this.headFile)) throw new LedgerTamperedError(`privacy ledger head ${this.headFile} is missing: cannot rule out deleted entries; refusing to continue`);
    let head: { count: number; hash: string; mac: string };
    try {
      head = JSON.parse(readFileSync(this.headFile, 'utf8'));
    } catch {
      throw new LedgerTamperedError(`privacy ledger head ${this.headFile} is not valid JSON; refusing to continue`);
    }
    if (!safeEqualHex(this.mac(`${head.count}:${head.hash}`), String(head.mac))) {
      throw new LedgerTamperedError(`privacy ledger head ${this.headFile} does not verify (edited); refusing to continue`);
    }
    // A crash between appending an entry and updating the head leaves the ledger one entry ahead:
    // that only over-counts spend, so it is accepted; fewer entries than the head is truncation.
    if (this.list.length < head.count) {
      throw new LedgerTamperedError(
        `privacy ledger ${this.file} has ${this.list.length} entries but its head records ${head.count}: entries were deleted; refusing to continue`,
      );
    }
    const at = head.count === 0 ? LEDGER_GENESIS : this.list[head.count - 1].hash;
    if (at !== head.hash) throw new LedgerTamperedError(`privacy ledger ${this.file} does not match its head at entry ${head.count}; refusing to continue`);
  }

  private writeHead(): void {
    const count = this.list.length;
    const hash = count === 0 ? LEDGER_GENESIS : this.list[count - 1].hash;
    // Durable: after a power loss an empty or torn head would read as tampering and stop the agent.
    writeFileAtomic(this.headFile, JSON.stringify({ count, hash, mac: this.mac(`${count}:${hash}`) }) + '\n', { mode: 0o600 });
  }

  private push(e: LedgerEntry): void {
    const r = entryRdp(e, this.orders);
    for (let i = 0; i < r.length; i++) this.cumulative[i] += r[i];
    this.list.push(e);
  }

  /** All entries, oldest first. */
  entries(): readonly LedgerEntry[] {
    return this.list;
  }

  /** Whether an entry charged the release with this digest (releaseDigest of its noisy values). */
  hasRelease(digest: string): boolean {
    return this.list.some((e) => e.release === digest);
  }

  /** Composed RDP curve of everything charged so far (per order). */
  rdp(): number[] {
    return this.cumulative.slice();
  }

  /** ε spent so far at δ. */
  spent(delta: number): number {
    return this.spentDetail(delta).epsilon;
  }

  spentDetail(delta: number): PrivacySpent {
    checkDelta(delta);
    // Nothing released yet is exactly ε = 0; the RDP conversion would print its slack (≈ 0.0035).
    if (this.list.length === 0) return { epsilon: 0, bestOrder: this.orders[this.orders.length - 1]! };
    return rdpToEpsilon(this.orders, this.cumulative, delta);
  }

  /** ε after also charging `entry` (nothing is written). */
  epsilonAfter(entry: LedgerEntryInput, delta: number): number {
    const r = entryRdp(entry, this.orders);
    return rdpToEpsilon(this.orders, r.map((x, i) => x + this.cumulative[i]), delta).epsilon;
  }

  wouldExceed(entry: LedgerEntryInput, epsilonMax: number, delta: number): boolean {
    checkBudget(epsilonMax, delta);
    return this.epsilonAfter(entry, delta) > epsilonMax;
  }

  /** Charges `entry` if it fits in the budget (durably, fsync'd) and returns the stored entry;
   *  otherwise throws BudgetExceededError and writes nothing. Call BEFORE releasing anything. */
  charge(entry: LedgerEntryInput, budget: Budget): LedgerEntry {
    checkBudget(budget.epsilonMax, budget.delta);
    validateEntry(entry);
    const before = this.spent(budget.delta);
    const after = this.epsilonAfter(entry, budget.delta);
    if (after > budget.epsilonMax) throw new BudgetExceededError(before, after, budget.epsilonMax, budget.delta, entry);
    const prev = this.list.length === 0 ? LEDGER_GENESIS : this.list[this.list.length - 1].hash;
    const draft = {
      seq: this.list.length,
      ts: this.now().toISOString(),
      kind: entry.kind,
      params: { ...entry.params },
      ...(entry.round !== undefined ? { round: entry.round } : {}),
      note: entry.note ?? '',
      ...(entry.release !== undefined ? { release: entry.release } : {}),
      prev,
    } as Omit<LedgerEntry, 'hash' | 'mac'>;
    const hash = sha256(canonical(bodyOf(draft)));
    const stored = { ...draft, hash, mac: this.mac(hash) } as LedgerEntry;
    const fd = openSync(this.file, 'a', 0o600);
    try {
      writeSync(fd, JSON.stringify(stored) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.push(stored);
    this.writeHead();
    return stored;
  }

  /** Largest number of further DP-SGD steps at (q, σ) that keeps ε ≤ epsilonMax (0 if none). */
  planSteps(q: number, sigma: number, budget: Budget): number {
    checkSampleRate(q);
    checkNoiseMultiplier(sigma);
    checkBudget(budget.epsilonMax, budget.delta);
    if (this.spent(budget.delta) > budget.epsilonMax) return 0;
    if (q === 0) return Number.MAX_SAFE_INTEGER;
    const fits = (t: number) =>
      this.epsilonAfter({ kind: 'dp-sgd', params: { q, sigma, steps: t } }, budget.delta) <= budget.epsilonMax;
    if (!fits(1)) return 0;
    let lo = 1;
    let hi = 2;
    const cap = 1e12;
    while (fits(hi)) {
      lo = hi;
      if (hi >= cap) return hi;
      hi = Math.min(hi * 2, cap);
    }
    // ε is increasing in steps: bisect on the integers, fits(lo) && !fits(hi).
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /** Summary for status reports and the CLI. */
  summary(delta: number): { entries: number; epsilon: number; delta: number; bestOrder: number; byKind: Record<string, number> } {
    const d = this.spentDetail(delta);
    const byKind: Record<string, number> = {};
    for (const e of this.list) byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
    return { entries: this.list.length, epsilon: d.epsilon, delta, bestOrder: d.bestOrder, byKind };
  }
}

function checkBudget(epsilonMax: number, delta: number): void {
  if (typeof epsilonMax !== 'number' || Number.isNaN(epsilonMax) || epsilonMax <= 0) {
    throw new RangeError(`budget --epsilon-max must be a number > 0, got ${String(epsilonMax)}`);
  }
  checkDelta(delta);
}

function readKey(keyFile: string): Buffer {
  const mode = statSync(keyFile).mode & 0o777;
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new Error(`ledger key file ${keyFile} is readable by others (mode ${mode.toString(8)}); run chmod 600 ${keyFile}`);
  }
  const hex = readFileSync(keyFile, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`ledger key file ${keyFile} is not 32 bytes of hex`);
  return Buffer.from(hex, 'hex');
}

function safeEqualHex(a: string, b: string): boolean {
  if (typeof b !== 'string' || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
