// Crash recovery over real sockets: the coordinator runs as its own process (the CLI), is SIGKILLed
// in the middle of a round after at least one commit, and is restarted on the same port and state
// directory. The banks (real agents, in this process) must reconnect by themselves with backoff and
// training must finish the configured rounds, resuming from the last committed round.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { runAgent } from '../../client-node/run-agent';
import { memoryLogger } from '../../shared/log/logger';
import { simulateBanks } from '../../shared/data/simulate';
import { readCheckpoint } from '../../coordinator/store/checkpoint';
import { freePort } from '../../shared/net/free-port';

const CLI = resolve(__dirname, '../../bin/fedsynth.mjs');
const ROUNDS = 3;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-restart-'));
  simulateBanks({ banks: 3, rows: 1800, out: join(dir, 'data'), seed: 5 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));


interface Coord {
  proc: ChildProcess;
  events: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Starts `fedsynth coordinator` as a child process; its JSON log lines are parsed into `events`. */
function startCoordinator(port: number, stateDir: string, cwd: string): Coord {
  const proc = spawn(
    process.execPath,
    [
      CLI, 'coordinator',
      '--schema', join(dir, 'data', 'schema.json'),
      '--host', '127.0.0.1',
      '--port', String(port),
      '--state-dir', stateDir,
      '--min-clients', '2',
      '--rounds', String(ROUNDS),
      '--deadline', '60',
      '--wait-for-clients', '0.2',
      '--local-steps', '2',
      '--batch-size', '64',
      '--exit-when-finished',
      '--insecure-aggregation',
      // A label calibration far too noisy for a few fraud rows (3 merged noise sds ≈ 600 rows at 2
      // banks, against about 8 real ones and summary noise of sd < 50): the first coordinator cancels
      // it when the weights freeze, and the restarted one must remember.
      '--label-calibration-noise', '100',
    ],
    { cwd, env: { ...process.env, FEDSYNTH_LOG_FORMAT: 'json', FEDSYNTH_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const events: Record<string, unknown>[] = [];
  let buf = '';
  proc.stderr!.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        events.push({ event: 'raw', line });
      }
    }
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, events, exited };
}

async function waitFor(cond: () => boolean, what: string, until: number): Promise<void> {
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function agentOpts(bank: number, url: string) {
  return {
    coordinatorUrl: url,
    bankId: `bank-${bank}`,
    dataPath: join(dir, 'data', `bank-${bank}.csv`),
    schemaPath: join(dir, 'data', 'schema.json'),
    stateDir: join(dir, `bank-${bank}-state`),
    exitWhenFinished: true,
    maxRowProblems: 10,
    epsilonMax: 1,
    summaryEpsilon: 0.2,
    log: memoryLogger(`bank-${bank}`),
  };
}

describe('coordinator crash recovery', () => {
  it('a SIGKILLed coordinator restarts from the last committed round; banks reconnect and training finishes', async () => {
    const until = Date.now() + 55_000;
    const port = await freePort();
    const stateDir = join(dir, 'state');
    const first = startCoordinator(port, stateDir, dir);
    let second: Coord | undefined;
    try {
      await waitFor(() => first.events.some((e) => e.event === 'coordinator_listening'), 'the coordinator to listen', until);
      const url = `http://127.0.0.1:${port}`;
      const opts = [1, 2].map((n) => agentOpts(n, url));
      const agents = opts.map((o) => runAgent(o));

      // Kill in the middle of a round: after round 1 is committed, as soon as round 2 has started.
      await waitFor(() => first.events.some((e) => e.event === 'round_started' && e.round === 2), 'round 2 to start', until);
      first.proc.kill('SIGKILL');
      await first.exited;
      const committedBefore = first.events.filter((e) => e.event === 'round_committed').map((e) => e.round);
      expect(committedBefore).toEqual([1]);

      // Restart on the same port and state directory, this time naming the state dir by a relative
      // path (a moved or differently mounted state dir must still recover).
      second = startCoordinator(port, relative(dir, stateDir), dir);
      const results = await Promise.race([
        Promise.all(agents),
        second.exited.then((code) => {
          throw new Error(`the restarted coordinator exited (${code}) before the agents finished: ${JSON.stringify(second!.events.slice(-5))}`);
        }),
        new Promise((_, rej) => setTimeout(() => rej(new Error('timed out waiting for the agents to finish')), Math.max(1, until - Date.now()))),
      ]);
      expect(results).toHaveLength(2);
      expect(await second.exited).toBe(0);

      // It resumed from the last committed round: round numbers continue, nothing is redone.
      const resumed = second.events.find((e) => e.event === 'resumed');
      expect(resumed).toMatchObject({ modelVersion: 1, nextRound: 2, roundsCommitted: 1 });
      const committedAfter = second.events.filter((e) => e.event === 'round_committed').map((e) => e.round);
      expect(committedAfter).toEqual([2, 3]);
      expect(second.events.find((e) => e.event === 'round_started')).toMatchObject({ round: 2, modelVersion: 1 });

      // The banks reconnected on their own (registered twice: before and after the crash).
      for (const o of opts) {
        const registered = o.log.lines.filter((l) => l.includes('"event":"registered"')).length;
        expect(registered).toBeGreaterThanOrEqual(2);
      }

      // The agents kept their container heartbeat (<state-dir>/heartbeat, an ISO time) while running.
      for (const o of opts) expect(Date.parse(readFileSync(join(o.stateDir, 'heartbeat'), 'utf8').trim())).toBeGreaterThan(Date.now() - 120_000);

      // The label calibration, cancelled by the first coordinator before round 1, stays cancelled
      // after the restart (persisted with the frozen weights): nothing requested, nothing spent on it.
      expect(first.events.find((e) => e.event === 'label_calibration_skipped')?.reason).toMatch(/decided before the first round/);
      expect(second.events.filter((e) => String(e.event).startsWith('label_calibration')).map((e) => [e.event, e.reason])).toEqual([['label_calibration_skipped', expect.stringMatching(/^cancelled before the first round: (class 1 has|the classes other than 0 have) about/)]]);
      for (const o of opts) {
        expect(o.log.lines.some((l) => l.includes('"label_calibration_not_planned"'))).toBe(true);
        expect(readFileSync(join(o.stateDir, 'privacy-ledger.jsonl'), 'utf8')).not.toContain('label calibration');
      }

      // The durable state: every round committed exactly once, versions 0..ROUNDS, checksums hold.
      const db = new Database(join(stateDir, 'coordinator.db'), { readonly: true });
      try {
        const rounds = db.prepare("SELECT round_id AS id, COUNT(*) AS n FROM rounds WHERE state = 'committed' GROUP BY round_id ORDER BY round_id").all() as { id: number; n: number }[];
        expect(rounds).toEqual([1, 2, 3].map((id) => ({ id, n: 1 })));
        const versions = db.prepare('SELECT version, round_id AS round, path, sha256 FROM model_versions ORDER BY version').all() as { version: number; round: number; path: string; sha256: string }[];
        expect(versions.map((v) => v.version)).toEqual([0, 1, 2, 3]);
        expect(versions[3]!.round).toBe(ROUNDS);
        for (const v of versions) {
          const ckpt = readCheckpoint(join(stateDir, 'checkpoints', v.path.split('/').pop()!), { expectedSha256: v.sha256 });
          expect(ckpt.version).toBe(v.version);
          expect(ckpt.round).toBe(v.round);
        }
      } finally {
        db.close();
      }
      const latest = readCheckpoint(join(stateDir, 'latest.ckpt'));
      expect(latest.version).toBe(ROUNDS);
      expect(latest.round).toBe(ROUNDS);
      expect(latest.meta.labelCalibration).toBeUndefined();
    } finally {
      first.proc.kill('SIGKILL');
      second?.proc.kill('SIGKILL');
    }
  });
});
