import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { dpSgdEpsilon, noiseMultiplierFor } from '../../shared/privacy';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PrivacyLedger, defaultDelta } from '../../client-node/ledger';
import { AGENT_STATUS_FILE } from '../../client-node/run-agent';

function num(name: string, check: (v: number) => boolean, what: string) {
  return (raw: string): number => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || !check(v)) throw new InvalidArgumentError(`${name} must be ${what}, got "${raw}"`);
    return v;
  };
}
const sampleRate = num('--sample-rate', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
const positive = (n: string) => num(n, (v) => v > 0, 'a number > 0');
const steps = num('--steps', (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer');
const delta = num('--delta', (v) => v > 0 && v < 1, 'a number in (0, 1)');

/** The budget δ the agent recorded beside this ledger (run-agent.ts), if any. */
function bankBudgetDelta(ledgerFile: string): number | undefined {
  const p = join(dirname(ledgerFile), AGENT_STATUS_FILE);
  if (!existsSync(p)) return undefined;
  try {
    const d = (JSON.parse(readFileSync(p, 'utf8')) as { privacyBudget?: { delta?: unknown } }).privacyBudget?.delta;
    return typeof d === 'number' && d > 0 && d < 1 ? d : undefined;
  } catch {
    return undefined;
  }
}

export function register(program: Command): void {
  const privacy = program.command('privacy').description('differential-privacy accounting (RDP of the Poisson-subsampled Gaussian) and the bank ledger');

  privacy
    .command('epsilon')
    .description('ε spent by DP-SGD with Poisson sampling rate q, noise multiplier σ over T steps at δ')
    .requiredOption('--sample-rate <q>', 'Poisson sampling rate (batch size / records)', sampleRate)
    .requiredOption('--noise-multiplier <sigma>', 'noise std / clipping norm', positive('--noise-multiplier'))
    .requiredOption('--steps <T>', 'number of DP-SGD steps', steps)
    .option('--delta <d>', 'δ', delta, 1e-5)
    .addHelpText('after', '\nThe last line of output is ε alone.')
    .action((o: { sampleRate: number; noiseMultiplier: number; steps: number; delta: number }) => {
      const r = dpSgdEpsilon(o.sampleRate, o.noiseMultiplier, o.steps, o.delta);
      process.stdout.write(`q=${o.sampleRate} sigma=${o.noiseMultiplier} steps=${o.steps} delta=${o.delta} best-order=${r.bestOrder}\n`);
      process.stdout.write(`${r.epsilon}\n`);
    });

  privacy
    .command('noise')
    .description('smallest noise multiplier σ (to 0.01 in ε) meeting a target ε at δ for Poisson rate q over T steps')
    .requiredOption('--sample-rate <q>', 'Poisson sampling rate (batch size / records)', sampleRate)
    .requiredOption('--epsilon <e>', 'target ε', positive('--epsilon'))
    .requiredOption('--steps <T>', 'number of DP-SGD steps', steps)
    .option('--delta <d>', 'δ', delta, 1e-5)
    .addHelpText('after', '\nThe last line of output is σ alone.')
    .action((o: { sampleRate: number; epsilon: number; steps: number; delta: number }) => {
      const sigma = noiseMultiplierFor({ targetEpsilon: o.epsilon, delta: o.delta, sampleRate: o.sampleRate, steps: o.steps });
      const reached = dpSgdEpsilon(o.sampleRate, sigma, o.steps, o.delta).epsilon;
      process.stdout.write(`q=${o.sampleRate} epsilon-target=${o.epsilon} steps=${o.steps} delta=${o.delta} epsilon-reached=${reached}\n`);
      process.stdout.write(`${sigma}\n`);
    });

  privacy
    .command('ledger')
    .description("verify a bank's privacy ledger (hash chain + HMAC) and print its spend")
    .requiredOption('--file <f>', 'ledger file (JSON lines)')
    .option('--key <f>', 'HMAC key file (default <file>.key)')
    .option('--delta <d>', `δ for the ε total (default: the bank's budget δ from ${AGENT_STATUS_FILE} beside the ledger, else ${defaultDelta()})`, delta)
    .option('--json', 'print the summary as JSON')
    .action((o: { file: string; key?: string; delta?: number; json?: boolean }) => {
      const ledger = PrivacyLedger.open(o.file, { keyFile: o.key, create: false });
      const budgetDelta = o.delta === undefined ? bankBudgetDelta(o.file) : undefined;
      const s = ledger.summary(o.delta ?? budgetDelta ?? defaultDelta());
      if (o.json) {
        process.stdout.write(JSON.stringify({ file: o.file, verified: true, ...s }, null, 2) + '\n');
        return;
      }
      process.stdout.write(`ledger ${o.file}: chain verified, ${s.entries} entries\n`);
      for (const e of ledger.entries()) {
        const p = Object.entries(e.params).map(([k, v]) => `${k}=${v}`).join(' ');
        process.stdout.write(`  #${e.seq} ${e.ts} ${e.kind}${e.round !== undefined ? ` round=${e.round}` : ''} ${p}${e.note ? `  (${e.note})` : ''}\n`);
      }
      const whence = o.delta !== undefined ? '--delta' : budgetDelta !== undefined ? `the bank's budget, ${AGENT_STATUS_FILE}` : 'default; the agent logs its budget δ at start-up (privacy_budget)';
      process.stdout.write(`spent: epsilon=${s.epsilon} at delta=${s.delta} (${whence}; best RDP order ${s.bestOrder})\n`);
    });
}
