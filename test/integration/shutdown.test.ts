// The coordinator CLI's shutdown on signals, as a process: a SIGTERM during start-up or a second one
// while the first shuts down must still end in a clean exit (0) with the state store closed, not the
// default signal exit (143) that would leave a supervisor guessing whether state was lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { simulateBanks } from '../../shared/data/simulate';
import { freePort } from '../../shared/net/free-port';

const CLI = resolve(__dirname, '../../bin/fedsynth.mjs');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-shutdown-'));
  simulateBanks({ banks: 1, rows: 300, out: join(dir, 'data'), seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts `fedsynth coordinator`; `onLine` sees each stderr line (JSON log) until it returns true once. */
async function runUntilExit(stateDir: string, onLine: (line: string, signal: () => void) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [CLI, 'coordinator', '--schema', join(dir, 'data', 'schema.json'), '--host', '127.0.0.1', '--port', String(port), '--state-dir', stateDir, '--min-clients', '3'], {
    env: { ...process.env, FEDSYNTH_LOG_FORMAT: 'json', FEDSYNTH_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let buf = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString('utf8');
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine(line, () => proc.kill('SIGTERM'));
    }
  });
  const killer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => proc.once('exit', (c, s) => r([c, s])));
  clearTimeout(killer);
  return { code, signal, stderr };
}

describe('coordinator CLI shutdown', () => {
  it('SIGTERM twice (the second a moment later, as an impatient supervisor does): the exit is still clean', async () => {
    const stateDir = join(dir, 'state-twice');
    let sent = false;
    const r = await runUntilExit(stateDir, (line, signal) => {
      if (!sent && line.includes('"coordinator_listening"')) {
        sent = true;
        signal();
        // Not at once: two pending SIGTERMs merge into one delivery.
        setTimeout(signal, 2);
      }
    });
    expect(sent).toBe(true);
    expect(r).toMatchObject({ code: 0, signal: null });
    // The state store was closed, not abandoned: it opens and holds the initial model version.
    const db = new Database(join(stateDir, 'coordinator.db'), { readonly: true });
    try {
      expect((db.prepare('SELECT COUNT(*) AS n FROM model_versions').get() as { n: number }).n).toBe(1);
    } finally {
      db.close();
    }
  });

  it('a SIGTERM during start-up (before it listens) ends in a clean exit once start-up is done', async () => {
    let sent = false;
    const r = await runUntilExit(join(dir, 'state-early'), (line, signal) => {
      // The first log line of a fresh state dir: the coordinator's identity was just created, the store not yet opened.
      if (!sent && line.includes('"coordinator_identity_created"')) {
        sent = true;
        signal();
      }
    });
    expect(sent).toBe(true);
    expect(r).toMatchObject({ code: 0, signal: null });
  });
});
