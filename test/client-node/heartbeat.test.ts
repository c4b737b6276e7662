import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEARTBEAT_INTERVAL_MS, startHeartbeat, type Heartbeat } from '../../client-node/heartbeat';
import { memoryLogger } from '../../shared/log/logger';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let dir: string;
let hb: Heartbeat | undefined;
afterEach(() => {
  hb?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('agent heartbeat', () => {
  it('writes <state-dir>/heartbeat at once and rewrites it every interval, atomically', async () => {
    expect(HEARTBEAT_INTERVAL_MS).toBe(15_000); // well inside the health check's 120 s limit
    dir = mkdtempSync(join(tmpdir(), 'fedsynth-hb-'));
    let t = Date.parse('2026-01-01T00:00:00.000Z');
    hb = startHeartbeat(dir, { intervalMs: 40, now: () => new Date((t += 1000)) });
    expect(hb.path).toBe(join(dir, 'heartbeat'));
    const first = readFileSync(hb.path, 'utf8');
    expect(first).toBe('2026-01-01T00:00:01.000Z\n');
    const mtime1 = statSync(hb.path).mtimeMs;
    await sleep(150);
    const later = readFileSync(hb.path, 'utf8').trim();
    expect(Date.parse(later)).toBeGreaterThan(Date.parse(first.trim()));
    expect(statSync(hb.path).mtimeMs).toBeGreaterThanOrEqual(mtime1);
    expect(readdirSync(dir)).toEqual(['heartbeat']); // no temp files left behind

    hb.stop();
    const stopped = readFileSync(hb.path, 'utf8');
    await sleep(120);
    expect(readFileSync(hb.path, 'utf8')).toBe(stopped); // a stopped agent's heartbeat ages
  });

  it('a failing write is logged once and never throws; the next good write recovers', () => {
    dir = mkdtempSync(join(tmpdir(), 'fedsynth-hb-'));
    const log = memoryLogger();
    hb = startHeartbeat(join(dir, 'missing'), { intervalMs: 60_000, log });
    expect(hb.beat()).toBe(false);
    expect(log.lines.filter((l) => l.includes('heartbeat_write_failed'))).toHaveLength(1);
    mkdirSync(join(dir, 'missing'));
    expect(hb.beat()).toBe(true);
    expect(log.lines.some((l) => l.includes('heartbeat_recovered'))).toBe(true);
    expect(readFileSync(hb.path, 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT.*Z\n$/);
  });
});
