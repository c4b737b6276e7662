// The project's embedded default data: simulated card transactions for a consortium of banks,
// generated from a seed (same seed, same bytes). Banks differ in size, customer mix and fraud
// rate, so the federation sees non-identical data. Fraud follows a few joint patterns rather than
// one column, as real card fraud does:
//   - card-not-present takeover: online, at night, from abroad, high amount, new device, young
//     account, risky merchants (electronics, travel, gaming);
//   - skimming / cash-out: ATM or card-present abroad, mid-to-high amounts, night-leaning;
//   - a residue of fraud that looks like ordinary spending (no model catches everything).
// Legitimate transactions follow daily rhythms, merchant-specific amounts (heavy-tailed
// log-normal), and channel-consistent devices. Nothing here is real data.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../tensor/random';
import { writeCsv } from './csv';
import { validateSchema, type ConsortiumSchema } from './schema';

export const MERCHANT_CATEGORIES = ['grocery', 'fuel', 'restaurant', 'retail', 'electronics', 'travel', 'entertainment', 'health', 'utilities', 'gaming'] as const;
export const CHANNELS = ['card_present', 'online', 'atm'] as const;
export const COUNTRIES = ['domestic', 'EU', 'UK', 'US', 'asia', 'other'] as const;
export const DEVICES = ['chip_pin', 'contactless', 'mobile_app', 'web_browser', 'new_device', 'atm_terminal'] as const;

/** The consortium schema of the simulated data: public, written by hand, never fitted. */
export function transactionSchema(): ConsortiumSchema {
  return validateSchema({
    version: 1,
    name: 'fedsynth simulated card transactions',
    target: 'is_fraud',
    columns: [
      { name: 'transaction_id', type: 'categorical', role: 'id', description: 'unique per bank; never modelled or sent' },
      { name: 'customer_age', type: 'integer', min: 18, max: 100, description: 'years' },
      { name: 'account_tenure_months', type: 'integer', min: 0, max: 600, scale: 'log' },
      { name: 'amount', type: 'continuous', min: 0, max: 25000, scale: 'log', step: 0.01, description: 'transaction amount in EUR, to the cent; heavy-tailed' },
      { name: 'merchant_category', type: 'categorical', categories: [...MERCHANT_CATEGORIES] },
      { name: 'channel', type: 'categorical', categories: [...CHANNELS] },
      { name: 'hour', type: 'integer', min: 0, max: 23, description: 'local hour of day' },
      { name: 'country', type: 'categorical', categories: [...COUNTRIES], description: 'merchant country relative to the card' },
      { name: 'device', type: 'categorical', categories: [...DEVICES] },
      { name: 'is_fraud', type: 'boolean', role: 'target' },
    ],
  });
}

interface BankProfile {
  /** Mean and sd of customer age. */
  age: [number, number];
  /** Probabilities of card_present / online / atm for legitimate transactions. */
  channel: [number, number, number];
  /** Share of legitimate transactions abroad. */
  abroad: number;
  /** Multiplier on typical amounts (affluent customers spend more). */
  spend: number;
  /** Fraud rate. */
  fraud: number;
}

// Three distinct banks; more banks cycle through them with small perturbations.
const PROFILES: BankProfile[] = [
  { age: [48, 15], channel: [0.62, 0.28, 0.1], abroad: 0.06, spend: 1.0, fraud: 0.004 }, // retail, older customers
  { age: [33, 10], channel: [0.35, 0.58, 0.07], abroad: 0.1, spend: 0.8, fraud: 0.007 }, // digital-first, younger
  { age: [52, 12], channel: [0.55, 0.38, 0.07], abroad: 0.18, spend: 2.2, fraud: 0.0025 }, // private banking, affluent, travels
];

// Typical (median) amount per merchant category, EUR, and log-sd.
const MERCHANT_AMOUNT: Record<(typeof MERCHANT_CATEGORIES)[number], [number, number]> = {
  grocery: [38, 0.7],
  fuel: [55, 0.4],
  restaurant: [32, 0.6],
  retail: [60, 0.9],
  electronics: [180, 1.0],
  travel: [320, 0.9],
  entertainment: [25, 0.8],
  health: [45, 0.9],
  utilities: [90, 0.5],
  gaming: [30, 1.1],
};
const MERCHANT_WEIGHTS_CP = [0.3, 0.12, 0.18, 0.18, 0.04, 0.02, 0.06, 0.07, 0.0, 0.03];
const MERCHANT_WEIGHTS_ONLINE = [0.1, 0.0, 0.08, 0.25, 0.12, 0.12, 0.1, 0.04, 0.12, 0.07];

class Draw {
  constructor(readonly rng: Rng) {}
  u(): number {
    return this.rng.next();
  }
  normal(): number {
    // Box-Muller on the seeded generator (deterministic; this is simulation, not privacy noise).
    const u1 = this.rng.nextOpen();
    const u2 = this.rng.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  pick<T>(items: readonly T[], weights: readonly number[]): T {
    let total = 0;
    for (const w of weights) total += w;
    let x = this.u() * total;
    for (let i = 0; i < items.length; i++) {
      x -= weights[i]!;
      if (x < 0) return items[i]!;
    }
    return items[items.length - 1]!;
  }
  logNormal(median: number, sd: number): number {
    return median * Math.exp(sd * this.normal());
  }
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

// Hour of a legitimate transaction: a daytime bimodal rhythm (lunch and evening peaks).
function legitHour(d: Draw): number {
  const peak = d.u() < 0.45 ? 12.5 : 18.5;
  const h = Math.round(peak + 3.2 * d.normal());
  return ((h % 24) + 24) % 24;
}

function nightHour(d: Draw): number {
  return d.pick([0, 1, 2, 3, 4, 5, 23], [1, 1.2, 1.3, 1.2, 1, 0.7, 0.8]);
}

function deviceFor(d: Draw, channel: string, takeover: boolean): string {
  if (channel === 'atm') return 'atm_terminal';
  if (channel === 'card_present') return d.u() < 0.55 ? 'contactless' : 'chip_pin';
  if (takeover) return d.pick(['new_device', 'web_browser', 'mobile_app'], [0.7, 0.2, 0.1]);
  return d.pick(['mobile_app', 'web_browser', 'new_device'], [0.55, 0.42, 0.03]);
}

type Txn = [number, number, number, string, string, number, string, string, number];

function legitimate(d: Draw, p: BankProfile, age: number, tenure: number): Txn {
  const channel = d.pick(CHANNELS, p.channel);
  const country = d.u() < p.abroad ? d.pick(COUNTRIES.slice(1), [0.45, 0.2, 0.15, 0.12, 0.08]) : 'domestic';
  let merchant: string;
  let amount: number;
  if (channel === 'atm') {
    merchant = 'retail';
    amount = 20 * Math.max(1, Math.round(d.logNormal(5, 0.6)));
  } else {
    merchant = d.pick(MERCHANT_CATEGORIES, channel === 'online' ? MERCHANT_WEIGHTS_ONLINE : MERCHANT_WEIGHTS_CP);
    const [median, sd] = MERCHANT_AMOUNT[merchant as keyof typeof MERCHANT_AMOUNT];
    amount = d.logNormal(median * p.spend * (country === 'domestic' ? 1 : 1.4), sd);
  }
  const hour = legitHour(d);
  return [age, tenure, amount, merchant, channel, hour, country, deviceFor(d, channel, false), 0];
}

function fraudulent(d: Draw, p: BankProfile, age: number, tenure: number): Txn {
  const kind = d.pick(['takeover', 'skimming', 'ordinary'], [0.6, 0.28, 0.12]);
  if (kind === 'takeover') {
    const merchant = d.pick(MERCHANT_CATEGORIES, [0.02, 0, 0.01, 0.1, 0.42, 0.25, 0.05, 0, 0, 0.15]);
    const amount = d.logNormal(900 * Math.sqrt(p.spend), 0.8);
    const country = d.pick(COUNTRIES, [0.1, 0.2, 0.15, 0.15, 0.2, 0.2]);
    const hour = d.u() < 0.8 ? nightHour(d) : legitHour(d);
    return [age, Math.min(tenure, Math.round(d.logNormal(8, 0.9))), amount, merchant, 'online', hour, country, deviceFor(d, 'online', true), 1];
  }
  if (kind === 'skimming') {
    const channel = d.u() < 0.65 ? 'atm' : 'card_present';
    const amount = channel === 'atm' ? 20 * Math.round(d.logNormal(20, 0.5)) : d.logNormal(400, 0.7);
    const country = d.pick(COUNTRIES, [0.15, 0.25, 0.1, 0.1, 0.2, 0.2]);
    const hour = d.u() < 0.6 ? nightHour(d) : legitHour(d);
    return [age, tenure, amount, channel === 'atm' ? 'retail' : d.pick(['electronics', 'retail', 'travel'], [0.5, 0.3, 0.2]), channel, hour, country, deviceFor(d, channel, false), 1];
  }
  const t = legitimate(d, p, age, tenure);
  t[2] *= 1.8;
  t[8] = 1;
  return t;
}

export interface SimulateOptions {
  banks: number;
  /** Total rows across all banks. */
  rows: number;
  out: string;
  seed: number;
}

export interface SimulatedBank {
  bankId: string;
  path: string;
  rows: number;
  frauds: number;
}

/** Unequal bank sizes: 50/30/20 for 3 banks; in general proportional to 1/(i+1) ... normalised. */
export function bankShares(banks: number): number[] {
  if (banks === 3) return [0.5, 0.3, 0.2];
  const w = Array.from({ length: banks }, (_, i) => 1 / (1 + 0.5 * i));
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
}

/** Generates the rows of one bank (deterministic given seed and bank index). */
export function simulateBankRows(bankIndex: number, rows: number, seed: number): (string | number)[][] {
  const base = PROFILES[bankIndex % PROFILES.length]!;
  const d = new Draw(new Rng((seed * 1_000_003 + bankIndex * 7919) >>> 0));
  // Banks beyond the third get perturbed copies of the profiles.
  const jitter = bankIndex < PROFILES.length ? 0 : 1;
  const p: BankProfile = {
    ...base,
    age: [base.age[0] + jitter * 6 * d.normal(), base.age[1]],
    fraud: clamp(base.fraud * (1 + jitter * 0.3 * d.normal()), 0.002, 0.01),
    spend: base.spend * (1 + jitter * 0.2 * d.normal()),
  };
  const out: (string | number)[][] = [];
  for (let i = 0; i < rows; i++) {
    const age = Math.round(clamp(p.age[0] + p.age[1] * d.normal(), 18, 95));
    const maxTenure = (age - 17) * 12;
    const tenure = Math.round(clamp(d.logNormal(Math.min(60, maxTenure / 2), 0.9), 0, Math.min(600, maxTenure)));
    const fraud = d.u() < p.fraud;
    const t = fraud ? fraudulent(d, p, age, tenure) : legitimate(d, p, age, tenure);
    t[2] = Math.round(clamp(t[2], 0.5, 25000) * 100) / 100;
    out.push([`b${bankIndex + 1}-${String(i + 1).padStart(8, '0')}`, ...t]);
  }
  return out;
}

/** Writes schema.json and bank-1.csv … bank-N.csv into `out`. */
export function simulateBanks(o: SimulateOptions): { schemaPath: string; banks: SimulatedBank[] } {
  if (!Number.isInteger(o.banks) || o.banks < 1) throw new Error(`banks must be a positive integer, got ${o.banks}`);
  if (!Number.isInteger(o.rows) || o.rows < o.banks * 10) throw new Error(`rows must be an integer ≥ 10 per bank, got ${o.rows}`);
  mkdirSync(o.out, { recursive: true });
  const schema = transactionSchema();
  const schemaPath = join(o.out, 'schema.json');
  writeFileSync(schemaPath, JSON.stringify(schema, null, 2) + '\n');
  const header = schema.columns.map((c) => c.name);
  const shares = bankShares(o.banks);
  const sizes = shares.map((s) => Math.floor(s * o.rows));
  sizes[0]! += o.rows - sizes.reduce((a, b) => a + b, 0);
  const banks = sizes.map((n, b) => {
    const rows = simulateBankRows(b, n, o.seed);
    const path = join(o.out, `bank-${b + 1}.csv`);
    writeCsv(path, header, rows);
    return { bankId: `bank-${b + 1}`, path, rows: n, frauds: rows.filter((r) => r[r.length - 1] === 1).length };
  });
  return { schemaPath, banks };
}
