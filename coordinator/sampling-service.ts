// The coordinator's model and sampling endpoints, on its own HTTP port (next to /status, /metrics):
//
//   GET /models                      committed model versions (JSON)
//   GET /models/latest               the latest checkpoint's bytes
//   GET /models/<version>            one version's checkpoint bytes
//   GET /models/<version|latest>/card  its model card (JSON): rounds, banks, ε per bank, date, schema hash
//   GET /sample?rows=N[&where=col=val][&seed=S][&version=V]  synthetic CSV from the (latest) model
//   GET /identity                    the coordinator's public identity (convenience only: pin the key out of band)
//
// Every body this service returns is signed by the coordinator identity: the header
// `x-fedsynth-signature` holds a base64 detached Ed25519 signature over
// `"fedsynth/<kind>-signature/v1\0" ‖ SHA-256(body)`, kind = model | model-card | sample, and
// `x-fedsynth-sha256` the hex digest. `fedsynth fetch-model` verifies it against the pinned key.
// Model cards carry the checkpoint's SHA-256, so a verified card is bound to one checkpoint.
//
// These endpoints are unauthenticated (as /status is): expose the coordinator's port only to the
// consortium's members. Sampling runs on the coordinator's event loop, one request at a time
// (busy: 429), with rows capped (default 100,000), so a sampling burst cannot starve the rounds.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import nacl from 'tweetnacl';
import { keyFingerprint, publicIdentity, type Identity } from '../protocol';
import { formatCsvLine } from '../shared/data/csv';
import type { Logger } from '../shared/log/logger';
import { SamplingError, sampleRows } from '../shared/sampling/sampler';
import { decodeCheckpoint, type Checkpoint } from './store/checkpoint';
import type { ModelVersionRow, StateStore } from './store/state-store';

export const DEFAULT_MAX_SAMPLE_ROWS = 100_000;
/**
 * Rows a request may have generated: `where` on the target keeps only the rows the classifier
 * labels with that class, so a rare class needs about rows / share of them. Sampling runs on the
 * coordinator's event loop (`fedsynth sample --where is_fraud=1 --rows 4000` from the demo's model,
 * 0.45% fraud, so ~890,000 generated rows, took 13.7 s on wasm, 2 cores), so this keeps a request
 * to about 3 s, like the largest plain one: 0.45% fraud allows 900 rows per request. A fetched
 * model has no limit (fedsynth fetch-model, then fedsynth sample).
 */
export const MAX_GENERATED_ROWS = 200_000;
export type SignedKind = 'model' | 'model-card' | 'sample';

/** The bytes an HTTP body signature covers: a domain tag for the kind of body, then SHA-256(body). */
export function bodySigningInput(kind: SignedKind, sha256Hex: string): Uint8Array {
  const tag = Buffer.from(`fedsynth/${kind}-signature/v1\0`, 'utf8');
  return new Uint8Array(Buffer.concat([tag, Buffer.from(sha256Hex, 'hex')]));
}

export function signBody(kind: SignedKind, body: Uint8Array, secretKey: Uint8Array): { sha256: string; signature: string } {
  const sha256 = createHash('sha256').update(body).digest('hex');
  const sig = nacl.sign.detached(bodySigningInput(kind, sha256), secretKey);
  return { sha256, signature: Buffer.from(sig).toString('base64') };
}

/** True when `signatureB64` is the coordinator's signature of `body` as `kind`. */
export function verifyBody(kind: SignedKind, body: Uint8Array, signatureB64: string, publicKey: Uint8Array): boolean {
  const sig = Buffer.from(signatureB64, 'base64');
  if (sig.length !== nacl.sign.signatureLength || publicKey.length !== nacl.sign.publicKeyLength) return false;
  const sha256 = createHash('sha256').update(body).digest('hex');
  return nacl.sign.detached.verify(bodySigningInput(kind, sha256), new Uint8Array(sig), publicKey);
}

export interface ModelCard {
  kind: 'fedsynth-model-card';
  modelVersion: number;
  /** Round that produced this version (0 = the initial weights). */
  round: number;
  /** Rounds committed up to this version. */
  rounds: number;
  /** Banks whose updates are in this model, with the number of committed rounds each took part in. */
  banks: { bankId: string; rounds: number }[];
  /** ε each bank reported as spent (its ledger total at δ), up to this version's round; null = no finite guarantee (trained without DP-SGD). */
  epsilonByBank: Record<string, number | null>;
  createdAt: string;
  schemaHash: string;
  checkpointSha256: string;
  checkpointBytes: number;
  modelConfig: unknown;
  /**
   * The generator in this version is an average over rounds: published = β·previous + (1 − β)·FedAvg
   * with this β (coordinator --generator-ema, after its warm-up); 0 = this round's FedAvg as is.
   */
  generatorEma: number;
  coordinatorFingerprint: string;
  notes: string;
}

/** What the service reads: committed model versions and the facts for their cards. */
export interface ModelSource {
  versions(): ModelVersionRow[];
  version(v: number): ModelVersionRow | undefined;
  latest(): ModelVersionRow | undefined;
  contributors(upToRound: number): { bankId: string; rounds: number }[];
  committedRounds(upToRound: number): number;
  epsilonByBank(upToRound: number): Record<string, number | null>;
}

export function modelSourceFromStore(store: StateStore): ModelSource {
  return {
    versions: () => store.modelVersions(),
    version: (v) => store.modelVersion(v),
    latest: () => store.latestModel(),
    contributors: (r) => store.contributors(r),
    committedRounds: (r) => store.committedRounds(r),
    epsilonByBank: (r) => store.epsilonByBank(r),
  };
}

export interface SamplingServiceOptions {
  models: ModelSource;
  identity: Identity;
  schemaHash: string;
  log: Logger;
  maxRows?: number;
}

type Loaded = { row: ModelVersionRow; bytes: Buffer; checkpoint?: Checkpoint };

export class SamplingService {
  private readonly maxRows: number;
  private cache: Loaded | undefined; // the most recently served version (usually the latest)
  private sampling = false;

  constructor(private readonly opts: SamplingServiceOptions) {
    this.maxRows = opts.maxRows ?? DEFAULT_MAX_SAMPLE_ROWS;
  }

  /** Handles the request if it is one of this service's paths; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://coordinator');
    const path = url.pathname;
    if (path === '/identity') {
      json(res, 200, publicIdentity({ ...this.opts.identity, id: 'coordinator' }));
      return true;
    }
    if (path === '/models') {
      json(res, 200, { models: this.opts.models.versions().map(({ path: _p, ...m }) => m) });
      return true;
    }
    const m = /^\/models\/([^/]+)(\/card)?$/.exec(path);
    if (m) {
      const row = this.resolveVersion(m[1]!, res);
      if (!row) return true;
      if (m[2]) this.serveCard(row, res);
      else this.serveModel(row, res);
      return true;
    }
    if (path === '/sample') {
      this.serveSample(url.searchParams, res);
      return true;
    }
    return false;
  }

  /** The model card of one committed version, from the persisted rounds and reported spend. */
  card(row: ModelVersionRow): ModelCard {
    const m = this.opts.models;
    const loaded = this.load(row);
    const header = this.checkpoint(loaded);
    return {
      kind: 'fedsynth-model-card',
      modelVersion: row.version,
      round: row.round,
      rounds: m.committedRounds(row.round),
      banks: row.round === 0 ? [] : m.contributors(row.round),
      epsilonByBank: row.round === 0 ? {} : pick(m.epsilonByBank(row.round), m.contributors(row.round).map((c) => c.bankId)),
      createdAt: row.createdAt,
      schemaHash: this.opts.schemaHash,
      checkpointSha256: row.sha256,
      checkpointBytes: row.bytes,
      modelConfig: header.modelConfig,
      generatorEma: typeof header.meta?.generatorEma === 'number' ? header.meta.generatorEma : 0,
      coordinatorFingerprint: keyFingerprint(this.opts.identity.sign.publicKey),
      notes: 'epsilon: the total privacy loss each bank reported for its data (at its delta), as recorded by the coordinator; null means the bank trained without DP-SGD, so the model gives its rows no finite guarantee.',
    };
  }

  private resolveVersion(raw: string, res: ServerResponse): ModelVersionRow | undefined {
    let row: ModelVersionRow | undefined;
    if (raw === 'latest') {
      row = this.opts.models.latest();
      if (!row) json(res, 404, { error: 'no model has been committed yet' });
      return row;
    }
    if (!/^\d{1,9}$/.test(raw)) {
      json(res, 400, { error: `model version must be a non-negative integer or 'latest', got '${raw.slice(0, 40)}'` });
      return undefined;
    }
    row = this.opts.models.version(Number(raw));
    if (!row) json(res, 404, { error: `model version ${raw} does not exist` });
    return row;
  }

  private load(row: ModelVersionRow): Loaded {
    if (this.cache && this.cache.row.version === row.version && this.cache.row.sha256 === row.sha256) return this.cache;
    const bytes = readFileSync(row.path);
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== row.sha256) throw new Error(`checkpoint v${row.version} fails its checksum: refusing to serve it`);
    this.cache = { row, bytes };
    return this.cache;
  }

  private checkpoint(l: Loaded): Checkpoint {
    l.checkpoint ??= decodeCheckpoint(l.bytes, `checkpoint v${l.row.version}`);
    return l.checkpoint;
  }

  private signedHeaders(kind: SignedKind, body: Uint8Array, row: ModelVersionRow): Record<string, string> {
    const { sha256, signature } = signBody(kind, body, this.opts.identity.sign.secretKey);
    return {
      'x-fedsynth-sha256': sha256,
      'x-fedsynth-signature': signature,
      'x-fedsynth-signature-kind': kind,
      'x-fedsynth-model-version': String(row.version),
      'x-fedsynth-coordinator-fingerprint': keyFingerprint(this.opts.identity.sign.publicKey),
      'cache-control': 'no-store',
    };
  }

  private serveModel(row: ModelVersionRow, res: ServerResponse): void {
    const { bytes } = this.load(row);
    res.writeHead(200, {
      ...this.signedHeaders('model', bytes, row),
      'content-type': 'application/octet-stream',
      'content-length': String(bytes.length),
      'content-disposition': `attachment; filename="model-v${row.version}.ckpt"`,
      link: `</models/${row.version}/card>; rel="describedby"`,
    });
    res.end(bytes);
  }

  private serveCard(row: ModelVersionRow, res: ServerResponse): void {
    const body = Buffer.from(JSON.stringify(this.card(row), null, 2) + '\n', 'utf8');
    res.writeHead(200, { ...this.signedHeaders('model-card', body, row), 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(body);
  }

  private serveSample(q: URLSearchParams, res: ServerResponse): void {
    const rowsRaw = q.get('rows');
    if (rowsRaw === null || !/^\d{1,9}$/.test(rowsRaw) || Number(rowsRaw) < 1) {
      return json(res, 400, { error: `rows must be a positive integer, got ${rowsRaw === null ? 'nothing' : `'${rowsRaw.slice(0, 40)}'`}` });
    }
    const n = Number(rowsRaw);
    if (n > this.maxRows) return json(res, 400, { error: `rows is capped at ${this.maxRows} per request, got ${n}` });
    let where: { column: string; value: string } | undefined;
    const w = q.get('where');
    if (w !== null) {
      const eq = w.indexOf('=');
      if (eq <= 0) return json(res, 400, { error: `where must look like column=value, got '${w.slice(0, 80)}'` });
      where = { column: w.slice(0, eq), value: w.slice(eq + 1) };
    }
    const seedRaw = q.get('seed');
    if (seedRaw !== null && !/^\d{1,10}$/.test(seedRaw)) return json(res, 400, { error: `seed must be a non-negative integer, got '${seedRaw.slice(0, 40)}'` });
    const row = this.resolveVersion(q.get('version') ?? 'latest', res);
    if (!row) return;
    if (this.sampling) {
      res.setHeader('retry-after', '1');
      return json(res, 429, { error: 'another sample is being generated; retry shortly' });
    }
    this.sampling = true;
    const t0 = Date.now();
    try {
      const ckpt = this.checkpoint(this.load(row));
      const { rows, columns, stratifiedBy, labelledBy } = sampleRows(ckpt as Parameters<typeof sampleRows>[0], n, { where, seed: seedRaw === null ? undefined : Number(seedRaw), maxGeneratedRows: MAX_GENERATED_ROWS });
      const lines = [formatCsvLine(columns)];
      for (const r of rows) lines.push(formatCsvLine(r));
      const body = Buffer.from(lines.join('\n') + '\n', 'utf8');
      res.writeHead(200, {
        ...this.signedHeaders('sample', body, row),
        'content-type': 'text/csv; charset=utf-8',
        'content-length': String(body.length),
        'x-fedsynth-model-card': `/models/${row.version}/card`,
        link: `</models/${row.version}/card>; rel="describedby"`,
        // How the rows were drawn (see shared/sampling/sampler.ts): the target column they were
        // stratified by, and the one whose labels the consortium's classifier drew.
        ...(stratifiedBy ? { 'x-fedsynth-stratified-by': stratifiedBy } : {}),
        ...(labelledBy ? { 'x-fedsynth-labels-from-classifier': labelledBy } : {}),
      });
      res.end(body);
      this.opts.log.info('sample_served', { modelVersion: row.version, rows: n, where: w ?? undefined, seconds: Number(((Date.now() - t0) / 1000).toFixed(2)) });
    } catch (err) {
      if (err instanceof SamplingError) return json(res, 400, { error: err.message });
      throw err;
    } finally {
      this.sampling = false;
    }
  }
}

function pick<T>(o: Record<string, T>, keys: string[]): Record<string, T | null> {
  return Object.fromEntries(keys.map((k) => [k, o[k] ?? null]));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const bytes = Buffer.from(JSON.stringify(body, null, 2) + '\n', 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length) });
  res.end(bytes);
}
