import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PrivacyLedger } from '../../client-node/ledger';

const run = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/run-ts.mjs', 'test/privacy/helpers/privacy-cli.ts', 'privacy', ...args], { encoding: 'utf8' });
const lastLine = (s: string) => s.trim().split('\n').at(-1)!;


describe('fedsynth privacy CLI', () => {
  it('epsilon and noise print the number alone on the last line, and invert each other', () => {
    const e = run('epsilon', '--sample-rate', '0.04', '--noise-multiplier', '1.5', '--steps', '2250', '--delta', '1e-5');
    expect(e.status).toBe(0);
    expect(Number(lastLine(e.stdout))).toBeCloseTo(7.32911117143, 6); // Opacus accountants_test.py
    const n = run('noise', '--sample-rate', '0.04', '--epsilon', '7.33', '--steps', '2250', '--delta', '1e-5');
    expect(n.status).toBe(0);
    expect(Math.abs(Number(lastLine(n.stdout)) - 1.5)).toBeLessThan(0.01);
  });

  it('ledger verifies and summarises; bad input is named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-cli-'));
    try {
      const file = join(dir, 'l.jsonl');
      PrivacyLedger.open(file).charge({ kind: 'dp-sgd', params: { q: 0.01, sigma: 1, steps: 10 } }, { epsilonMax: 5, delta: 1e-5 });
      const l = run('ledger', '--file', file);
      expect(l.status).toBe(0);
      expect(l.stdout).toMatch(/chain verified, 1 entries/);
      expect(l.stdout).toMatch(/at delta=0\.00001 \(default;/);
      // Beside an agent's state, ε is reported at the bank's own budget δ (agent-status.json) ...
      writeFileSync(join(dir, 'agent-status.json'), JSON.stringify({ bankId: 'b', privacyBudget: { epsilonMax: 5, delta: 1e-7, ledger: 'l.jsonl' } }));
      const own = run('ledger', '--file', file, '--json');
      expect(own.status).toBe(0);
      const js = JSON.parse(own.stdout) as { delta: number; epsilon: number };
      expect(js.delta).toBe(1e-7);
      expect(js.epsilon).toBeCloseTo(PrivacyLedger.open(file, { create: false }).spent(1e-7), 10);
      expect(run('ledger', '--file', file).stdout).toMatch(/at delta=1e-7 \(the bank's budget, agent-status\.json;/);
      // ... unless --delta says otherwise.
      expect(JSON.parse(run('ledger', '--file', file, '--json', '--delta', '1e-5').stdout).delta).toBe(1e-5);
      const bad = run('epsilon', '--sample-rate', '2', '--noise-multiplier', '1', '--steps', '3');
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toMatch(/--sample-rate must be a number in \[0, 1\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
