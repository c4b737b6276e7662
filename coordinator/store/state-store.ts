// The coordinator's durable state in SQLite (better-sqlite3): banks, rounds and their
// participants, model versions (checkpoint path + SHA-256), privacy spend per bank, rejections.
// WAL mode with synchronous=FULL: a committed round survives power loss, and a reader (status)
// never blocks the writer. A round is committed in ONE transaction, after its checkpoint file is
// durably on disk, so after a crash a round is either fully committed or not at all.
import Database from 'better-sqlite3';
import { existsSync, readdirSync, renameSync, mkdirSync, unlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readCheckpoint } from './checkpoint';

const MIGRATIONS: string[] = [
  `CREATE TABLE banks (
     bank_id TEXT PRIMARY KEY,
     sign_public_key TEXT NOT NULL,
     box_public_key TEXT NOT NULL,
     first_seen TEXT NOT NULL,
     last_seen TEXT NOT NULL
   );
   CREATE TABLE rounds (
     round_id INTEGER NOT NULL,
     attempt INTEGER NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('committed', 'failed', 'abandoned')),
     finished_at TEXT NOT NULL,
     model_version_out INTEGER,
     banks INTEGER NOT NULL DEFAULT 0,
     message TEXT NOT NULL DEFAULT '',
     PRIMARY KEY (round_id, attempt)
   );
   CREATE TABLE round_participants (
     round_id INTEGER NOT NULL,
     attempt INTEGER NOT NULL,
     bank_id TEXT NOT NULL,
     status TEXT NOT NULL,
     sample_count INTEGER,
     reason TEXT NOT NULL DEFAULT '',
     PRIMARY KEY (round_id, attempt, bank_id)
   );
   CREATE TABLE model_versions (
     version INTEGER PRIMARY KEY,
     round_id INTEGER NOT NULL,
     path TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     bytes INTEGER NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE UNIQUE INDEX committed_round_once ON rounds(round_id) WHERE state = 'committed';
   CREATE TABLE privacy_spend (
     bank_id TEXT NOT NULL,
     round_id INTEGER NOT NULL,
     kind TEXT NOT NULL,
     epsilon REAL,
     delta REAL NOT NULL,
     reported_at TEXT NOT NULL
   );
   CREATE TABLE rejections (
     ts TEXT NOT NULL,
     who TEXT NOT NULL,
     code TEXT NOT NULL,
     message TEXT NOT NULL
   );
   CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
];

export interface ModelVersionRow {
  version: number;
  round: number;
  path: string;
  sha256: string;
  bytes: number;
  createdAt: string;
}

export interface ParticipantRecord {
  bankId: string;
  status: 'updated' | 'dropped' | 'straggler' | 'rejected';
  sampleCount?: number;
  reason?: string;
}

export class StateStore {
  readonly db: Database.Database;
  readonly checkpointDir: string;

  readonly stateDir: string;

  constructor(stateDir: string) {
    // Absolute from here on: paths stored in the database must not depend on the working directory.
    this.stateDir = resolve(stateDir);
    stateDir = this.stateDir;
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.checkpointDir = join(stateDir, 'checkpoints');
    mkdirSync(this.checkpointDir, { recursive: true });
    this.db = new Database(join(stateDir, 'coordinator.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = this.db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    let current = row?.version ?? 0;
    if (!row) this.db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
    for (; current < MIGRATIONS.length; current++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[current]!);
        this.db.prepare('UPDATE schema_version SET version = ?').run(current + 1);
      })();
    }
  }

  /**
   * Startup recovery: temp files of interrupted checkpoint writes are removed, checkpoint files that
   * no committed model version references (a crash between file and commit) are quarantined, and the
   * latest committed checkpoint is verified against its checksum.
   *
   * Checkpoints are matched by file name inside <state-dir>/checkpoints, never by the absolute path
   * recorded at commit time: a state dir that was moved, restored from backup, mounted elsewhere or
   * named by a relative path must recover, not have its committed checkpoints quarantined.
   */
  recover(): { latest: ModelVersionRow | undefined; nextRoundId: number; roundsCommitted: number; removedTemp: number; quarantined: number } {
    let removedTemp = 0;
    let quarantined = 0;
    const known = new Set((this.db.prepare('SELECT path FROM model_versions').all() as { path: string }[]).map((r) => basename(r.path)));
    for (const f of readdirSync(this.checkpointDir)) {
      const p = join(this.checkpointDir, f);
      if (f.endsWith('.tmp')) {
        unlinkSync(p);
        removedTemp++;
      } else if (f.endsWith('.ckpt') && !known.has(f)) {
        const q = join(this.stateDir, 'quarantine');
        mkdirSync(q, { recursive: true });
        renameSync(p, join(q, f));
        quarantined++;
      }
    }
    for (const f of readdirSync(this.stateDir)) if (f.endsWith('.tmp')) (unlinkSync(join(this.stateDir, f)), removedTemp++);
    const latest = this.latestModel();
    if (latest) {
      if (!existsSync(latest.path)) throw new Error(`state is inconsistent: committed model v${latest.version} has no checkpoint file at ${latest.path}`);
      readCheckpoint(latest.path, { expectedSha256: latest.sha256 });
    }
    const committed = this.db.prepare("SELECT COUNT(*) AS n, MAX(round_id) AS maxRound FROM rounds WHERE state = 'committed'").get() as { n: number; maxRound: number | null };
    return { latest, nextRoundId: (committed.maxRound ?? 0) + 1, roundsCommitted: committed.n, removedTemp, quarantined };
  }

  upsertBank(bankId: string, signPublicKey: Uint8Array, boxPublicKey: Uint8Array): void {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO banks (bank_id, sign_public_key, box_public_key, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(bank_id) DO UPDATE SET sign_public_key = excluded.sign_public_key, box_public_key = excluded.box_public_key, last_seen = excluded.last_seen`,
      )
      .run(bankId, b64(signPublicKey), b64(boxPublicKey), now, now);
  }

  /** The key a bank registered with before, if any (pinned across restarts). */
  bankKey(bankId: string): Uint8Array | undefined {
    const r = this.db.prepare('SELECT sign_public_key AS k FROM banks WHERE bank_id = ?').get(bankId) as { k: string } | undefined;
    return r ? new Uint8Array(Buffer.from(r.k, 'base64')) : undefined;
  }

  touchBank(bankId: string): void {
    const now = new Date().toISOString();
    this.defer(() => this.stmt('UPDATE banks SET last_seen = ? WHERE bank_id = ?').run(now, bankId));
  }

  // Write-behind for frequent rows that no decision depends on (privacy-spend reports, last-seen
  // times, rejections): they are queued and written in ONE transaction at most FLUSH_MS later, and
  // always before a round is committed or failed, before status is read, and on close. With
  // synchronous=FULL every transaction costs an fsync; one per bank update made the commit path of a
  // 200-bank round spend seconds in fsync (bench:load), and a flood of bad frames could force an
  // fsync per frame. A crash loses at most the last FLUSH_MS of such rows, never a round: a round's
  // spend reports are flushed before its commit, and banks re-report their cumulative ε every round.
  static readonly FLUSH_MS = 250;
  private pending: (() => void)[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly statements = new Map<string, Database.Statement>();

  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  private defer(op: () => void): void {
    this.pending.push(op);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), StateStore.FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  /** Writes the queued rows now, in one transaction. */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.pending.length === 0 || !this.db.open) return;
    const ops = this.pending;
    this.pending = [];
    this.db.transaction(() => {
      for (const op of ops) op();
      // Bounded: keep the most recent 10,000 rejections.
      this.stmt('DELETE FROM rejections WHERE rowid <= (SELECT MAX(rowid) FROM rejections) - 10000').run();
    })();
  }

  /** Version 0: the initial weights, so every version has a checkpoint. */
  recordInitialModel(info: { path: string; sha256: string; bytes: number }): void {
    this.db.prepare('INSERT OR IGNORE INTO model_versions (version, round_id, path, sha256, bytes, created_at) VALUES (0, 0, ?, ?, ?, ?)').run(info.path, info.sha256, info.bytes, new Date().toISOString());
  }

  /** A model version that no round produced (a calibrated copy of `roundId`'s model). */
  recordModelVersion(version: number, roundId: number, ckpt: { path: string; sha256: string; bytes: number }): void {
    this.flush();
    this.db.prepare('INSERT INTO model_versions (version, round_id, path, sha256, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(version, roundId, ckpt.path, ckpt.sha256, ckpt.bytes, new Date().toISOString());
  }

  /** One transaction: the model version and the round's outcome appear together or not at all. */
  commitRound(roundId: number, attempt: number, version: number, ckpt: { path: string; sha256: string; bytes: number }, participants: ParticipantRecord[]): void {
    const now = new Date().toISOString();
    this.flush();
    this.db.transaction(() => {
      this.db.prepare('INSERT INTO model_versions (version, round_id, path, sha256, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(version, roundId, ckpt.path, ckpt.sha256, ckpt.bytes, now);
      this.db
        .prepare("INSERT INTO rounds (round_id, attempt, state, finished_at, model_version_out, banks, message) VALUES (?, ?, 'committed', ?, ?, ?, 'ok')")
        .run(roundId, attempt, now, version, participants.filter((p) => p.status === 'updated').length);
      const ins = this.db.prepare('INSERT INTO round_participants (round_id, attempt, bank_id, status, sample_count, reason) VALUES (?, ?, ?, ?, ?, ?)');
      for (const p of participants) ins.run(roundId, attempt, p.bankId, p.status, p.sampleCount ?? null, p.reason ?? '');
    })();
  }

  failRound(roundId: number, attempt: number, message: string, participants: ParticipantRecord[]): void {
    const now = new Date().toISOString();
    this.flush();
    this.db.transaction(() => {
      this.db.prepare("INSERT OR REPLACE INTO rounds (round_id, attempt, state, finished_at, banks, message) VALUES (?, ?, 'failed', ?, 0, ?)").run(roundId, attempt, now, message);
      const ins = this.db.prepare('INSERT OR REPLACE INTO round_participants (round_id, attempt, bank_id, status, reason) VALUES (?, ?, ?, ?, ?)');
      for (const p of participants) ins.run(roundId, attempt, p.bankId, p.status, p.reason ?? '');
    })();
  }

  failedAttempts(roundId: number): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM rounds WHERE round_id = ? AND state != 'committed'").get(roundId) as { n: number }).n;
  }

  latestModel(): ModelVersionRow | undefined {
    const r = this.db.prepare('SELECT version, round_id AS round, path, sha256, bytes, created_at AS createdAt FROM model_versions ORDER BY version DESC LIMIT 1').get() as ModelVersionRow | undefined;
    return r && { ...r, path: this.checkpointPath(r.path) };
  }

  /** One committed model version (path resolved inside this state dir), or undefined. */
  modelVersion(version: number): ModelVersionRow | undefined {
    const r = this.db.prepare('SELECT version, round_id AS round, path, sha256, bytes, created_at AS createdAt FROM model_versions WHERE version = ?').get(version) as ModelVersionRow | undefined;
    return r && { ...r, path: this.checkpointPath(r.path) };
  }

  /** Where a recorded checkpoint lives now: its file name inside this state dir's checkpoints folder. */
  checkpointPath(recorded: string): string {
    return join(this.checkpointDir, basename(recorded));
  }

  /**
   * Banks whose updates went into a committed round (up to and including `upToRound`), with how many
   * committed rounds each contributed to.
   */
  contributors(upToRound = Number.MAX_SAFE_INTEGER): { bankId: string; rounds: number }[] {
    return this.db
      .prepare(
        `SELECT p.bank_id AS bankId, COUNT(*) AS rounds FROM round_participants p
         JOIN rounds r ON r.round_id = p.round_id AND r.attempt = p.attempt AND r.state = 'committed'
         WHERE p.status = 'updated' AND p.round_id <= ? GROUP BY p.bank_id ORDER BY p.bank_id`,
      )
      .all(upToRound) as { bankId: string; rounds: number }[];
  }

  /** Committed rounds up to and including `upToRound`. */
  committedRounds(upToRound = Number.MAX_SAFE_INTEGER): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM rounds WHERE state = 'committed' AND round_id <= ?").get(upToRound) as { n: number }).n;
  }

  /**
   * ε per bank from the spends the banks reported (their total, so the largest report up to
   * `upToRound` counts; summaries are reported with round 0). null = the bank trained without
   * DP-SGD at least once: no finite guarantee.
   */
  epsilonByBank(upToRound = Number.MAX_SAFE_INTEGER): Record<string, number | null> {
    this.flush();
    const rows = this.db
      .prepare(
        `SELECT bank_id AS bankId, MAX(epsilon) AS epsilon,
           SUM(CASE WHEN kind = 'training' AND epsilon IS NULL THEN 1 ELSE 0 END) AS nonPrivate
         FROM privacy_spend WHERE round_id <= ? GROUP BY bank_id ORDER BY bank_id`,
      )
      .all(upToRound) as { bankId: string; epsilon: number | null; nonPrivate: number }[];
    return Object.fromEntries(rows.map((r) => [r.bankId, r.nonPrivate > 0 ? null : r.epsilon]));
  }

  /** Every committed model version, oldest first (paths resolved inside this state dir). */
  modelVersions(): ModelVersionRow[] {
    const rows = this.db.prepare('SELECT version, round_id AS round, path, sha256, bytes, created_at AS createdAt FROM model_versions ORDER BY version').all() as ModelVersionRow[];
    return rows.map((r) => ({ ...r, path: this.checkpointPath(r.path) }));
  }

  recordSpend(bankId: string, roundId: number, kind: 'training' | 'summary' | 'calibration', epsilon: number, delta: number): void {
    // SQLite has no infinity literal in REAL columns we want to rely on; NULL means "no finite guarantee".
    const row = [bankId, roundId, kind, Number.isFinite(epsilon) ? epsilon : null, delta, new Date().toISOString()];
    this.defer(() => this.stmt('INSERT INTO privacy_spend (bank_id, round_id, kind, epsilon, delta, reported_at) VALUES (?, ?, ?, ?, ?, ?)').run(...row));
  }

  recordRejection(who: string, code: string, message: string): void {
    const row = [new Date().toISOString(), who.slice(0, 200), code, message.slice(0, 1000)];
    this.defer(() => this.stmt('INSERT INTO rejections (ts, who, code, message) VALUES (?, ?, ?, ?)').run(...row));
  }

  setSetting(key: string, value: unknown): void {
    this.db.prepare('INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)').run(key, JSON.stringify(value));
  }

  /** Several settings in one transaction: all are stored, or none (e.g. the frozen weights and what was decided with them). */
  setSettings(entries: Record<string, unknown>): void {
    const put = this.db.prepare('INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)');
    this.db.transaction(() => {
      for (const [key, value] of Object.entries(entries)) put.run(key, JSON.stringify(value));
    })();
  }

  getSetting<T>(key: string): T | undefined {
    const r = this.db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
    return r ? (JSON.parse(r.value) as T) : undefined;
  }

  status(): Record<string, unknown> {
    this.flush();
    const banks = this.db
      .prepare(
        `SELECT b.bank_id AS bankId, b.first_seen AS firstSeen, b.last_seen AS lastSeen,
           (SELECT epsilon FROM privacy_spend s WHERE s.bank_id = b.bank_id ORDER BY s.rowid DESC LIMIT 1) AS epsilon,
           (SELECT COUNT(*) FROM privacy_spend s WHERE s.bank_id = b.bank_id AND s.kind = 'training' AND s.epsilon IS NULL) AS nonPrivateUpdates,
           (SELECT delta FROM privacy_spend s WHERE s.bank_id = b.bank_id ORDER BY s.rowid DESC LIMIT 1) AS delta
         FROM banks b ORDER BY b.bank_id`,
      )
      .all() as { bankId: string; epsilon: number | null; nonPrivateUpdates: number; [k: string]: unknown }[];
    const models = this.db.prepare('SELECT version, round_id AS round, sha256, bytes, created_at AS createdAt FROM model_versions ORDER BY version').all();
    const rounds = this.db.prepare('SELECT round_id AS roundId, attempt, state, banks, message, finished_at AS finishedAt FROM rounds ORDER BY finished_at DESC LIMIT 50').all();
    const rejections = this.db.prepare('SELECT code, COUNT(*) AS n FROM rejections GROUP BY code').all();
    return {
      // epsilon: the last finite ε the bank reported; nonPrivate: it trained without DP-SGD (ε = ∞).
      banks: banks.map(({ nonPrivateUpdates, ...b }) => ({ ...b, nonPrivate: nonPrivateUpdates > 0 })),
      models,
      rounds,
      rejections,
    };
  }

  close(): void {
    if (this.db.open) {
      this.flush();
      this.db.close();
    }
  }
}

function b64(b: Uint8Array): string {
  return Buffer.from(b).toString('base64');
}
