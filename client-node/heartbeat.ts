// The agent's liveness file for container health checks (docker/agent-healthcheck.mjs): while the
// agent runs, `<state-dir>/heartbeat` is rewritten every 15 s with the current ISO time. The write
// is atomic (temp file + rename), so a health check never reads a half-written file, and the timer
// is unref'd, so the heartbeat never keeps a finished agent alive. A failed write is logged (once
// per streak of failures) and retried on the next beat; it never stops the agent.
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../shared/log/logger';

export const HEARTBEAT_FILE = 'heartbeat';
export const HEARTBEAT_INTERVAL_MS = 15_000;

export interface Heartbeat {
  /** The heartbeat file's path. */
  readonly path: string;
  /** Writes the heartbeat now; returns false if the write failed. */
  beat(): boolean;
  /** Stops the timer (the file stays, and ages, so a stopped agent turns unhealthy). */
  stop(): void;
}

export function startHeartbeat(stateDir: string, opts: { intervalMs?: number; now?: () => Date; log?: Logger } = {}): Heartbeat {
  const path = join(stateDir, HEARTBEAT_FILE);
  const tmp = join(stateDir, `.${HEARTBEAT_FILE}.${process.pid}.tmp`);
  const now = opts.now ?? (() => new Date());
  let failing = false;
  const beat = (): boolean => {
    try {
      writeFileSync(tmp, now().toISOString() + '\n', { mode: 0o644 });
      renameSync(tmp, path);
      if (failing) opts.log?.info('heartbeat_recovered', { path });
      failing = false;
      return true;
    } catch (err) {
      if (!failing) opts.log?.warn('heartbeat_write_failed', { path, error: (err as Error).message });
      failing = true;
      try {
        unlinkSync(tmp);
      } catch {
        /* nothing to clean up */
      }
      return false;
    }
  };
  beat();
  const timer = setInterval(beat, opts.intervalMs ?? HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return { path, beat, stop: () => clearInterval(timer) };
}
