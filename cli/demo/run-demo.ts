// `fedsynth demo`: the whole consortium on one machine, as separate processes on loopback:
// simulate 3 banks -> coordinator + 3 bank agents -> rounds -> sample -> real-vs-synthetic summary.
// Every step is the same CLI a person would run; this file only orchestrates and reports.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createProgress } from '../../shared/log/progress';
import { generateIdentity, publicIdentity, saveIdentity } from '../../protocol';
import { summarizeComparison, formatSummary, minorityClass } from './summary';
import { freePort } from '../../shared/net/free-port';

/** Rows of the target's rarest class sampled with --where after the plain sample. */
const OVERSAMPLED_ROWS = 1000;

const CLI = resolve(fileURLToPath(new URL('../../bin/fedsynth.mjs', import.meta.url)));

export interface DemoOptions {
  out: string;
  banks: number;
  rows: number;
  rounds: number;
  localSteps: number;
  batchSize: number;
  sampleRows: number;
  seed: number;
  architecture: string;
  /** The coordinator's --pair-counts-noise and --g-steps (absent: its defaults, off and 1). */
  pairCountsNoise?: number;
  gSteps?: number;
  /** Give up (and exit non-zero) if the rounds have not finished by then. */
  timeoutSeconds: number;
}

export async function runDemo(opts: DemoOptions): Promise<void> {
  const t0 = Date.now();
  const out = resolve(opts.out);
  const dataDir = join(out, 'data');
  const stateDir = join(out, 'coordinator-state');
  rmSync(stateDir, { recursive: true, force: true });
  for (let b = 1; b <= opts.banks; b++) rmSync(join(out, `bank-${b}-state`), { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const children = new Set<ChildProcess>();
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\ndemo: ${sig} received, stopping coordinator and bank agents\n`);
    killAll();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', killAll);

  const step = (s: string): void => void process.stderr.write(`\n== ${s}\n`);
  try {
    step(`1/4 simulating ${opts.banks} banks (${opts.rows} rows in total, seed ${opts.seed})`);
    await runToEnd(children, ['simulate-banks', '--banks', String(opts.banks), '--rows', String(opts.rows), '--out', dataDir, '--seed', String(opts.seed)]);

    step(`2/4 starting the coordinator and ${opts.banks} bank agents on loopback`);
    // Each bank's identity, as `fedsynth keygen` makes it, in its own state dir; the public halves
    // form the coordinator's allow-list, which is also every bank's consortium directory: banks verify
    // the signed secure-aggregation key list against it (the coordinator cannot substitute keys).
    const directoryPath = join(out, 'consortium.json');
    const publics = [];
    for (let b = 1; b <= opts.banks; b++) {
      const bankState = join(out, `bank-${b}-state`);
      mkdirSync(bankState, { recursive: true, mode: 0o700 });
      const identity = generateIdentity(`bank-${b}`);
      saveIdentity(join(bankState, 'identity.json'), identity);
      publics.push(publicIdentity(identity));
    }
    writeFileSync(directoryPath, JSON.stringify(publics, null, 2) + '\n');
    process.stderr.write(`  consortium directory (allow-list): ${directoryPath}; key-list verification on at every bank\n`);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { ...process.env, FEDSYNTH_LOG_FORMAT: 'json' };
    const coordinator = spawnCli(
      children,
      [
        'coordinator',
        '--host', '127.0.0.1',
        '--port', String(port),
        '--schema', join(dataDir, 'schema.json'),
        '--state-dir', stateDir,
        '--allow-list', directoryPath,
        '--min-clients', String(opts.banks),
        '--rounds', String(opts.rounds),
        '--local-steps', String(opts.localSteps),
        '--batch-size', String(opts.batchSize),
        '--architecture', opts.architecture,
        ...(opts.pairCountsNoise !== undefined ? ['--pair-counts-noise', String(opts.pairCountsNoise)] : []),
        ...(opts.gSteps !== undefined ? ['--g-steps', String(opts.gSteps)] : []),
        '--exit-when-finished',
      ],
      env,
    );
    const progress = createProgress('rounds', opts.rounds);
    let finished = false;
    const agentFailures: Promise<never>[] = [];
    const roundDone = new Promise<void>((resolveRounds, rejectRounds) => {
      let reporting = new Set<string>();
      let round = 0;
      const roundStart = new Map<number, number>();
      createInterface({ input: coordinator.stderr! }).on('line', (line) => {
        const ev = parseJsonLine(line);
        if (!ev) return void process.stderr.write(`  coordinator: ${line}\n`);
        if (ev.level === 'error') process.stderr.write(`  coordinator error: ${ev.event} ${JSON.stringify(ev)}\n`);
        switch (ev.event) {
          case 'round_started':
            round = Number(ev.round);
            reporting = new Set();
            roundStart.set(round, Date.now());
            progress.update(round - 1, `round ${round}: training on ${(ev.participants as string[]).length} banks`);
            break;
          case 'update_received':
            reporting.add(String(ev.bank));
            progress.update(round - 1, `round ${round}: ${reporting.size}/${ev.of} banks reported`);
            break;
          case 'round_committed': {
            const secs = ((Date.now() - (roundStart.get(Number(ev.round)) ?? Date.now())) / 1000).toFixed(1);
            const losses = ev.dLoss !== undefined ? `  D loss ${fmt(ev.dLoss)}  G loss ${fmt(ev.gLoss)}` : '';
            progress.update(Number(ev.round), `round ${ev.round} committed: ${ev.banks} banks, ${secs}s${losses}`);
            break;
          }
          case 'round_failed':
            process.stderr.write(`  round ${ev.round} failed: ${ev.reason} (retrying)\n`);
            break;
          case 'training_finished':
            progress.done(`model version ${ev.modelVersion}`);
            resolveRounds();
            break;
        }
      });
      coordinator.once('exit', (code) => (code === 0 ? resolveRounds() : rejectRounds(new Error(`coordinator exited with code ${code}`))));
    });
    await waitForPort(port, 60_000);
    for (let b = 1; b <= opts.banks; b++) {
      const agent = spawnCli(
        children,
        [
          'agent',
          '--coordinator', url,
          '--bank-id', `bank-${b}`,
          '--data', join(dataDir, `bank-${b}.csv`),
          '--schema', join(dataDir, 'schema.json'),
          // Each bank has its own state (identity key, privacy ledger), as on separate premises.
          '--state-dir', join(out, `bank-${b}-state`),
          '--consortium-directory', directoryPath,
          // Record-level DP-SGD (on by default) spreads the bank's budget over the demo's rounds.
          '--dp-rounds', String(opts.rounds),
          '--exit-when-finished',
        ],
        { ...process.env, FEDSYNTH_LOG_LEVEL: 'warn' },
      );
      agent.stderr!.on('data', (d: Buffer) => process.stderr.write(prefixLines(`  bank-${b}: `, d.toString())));
      agentFailures.push(
        new Promise<never>((_, reject) =>
          agent.once('exit', (code, signal) => {
            if (code !== 0 && !finished) reject(new Error(`bank-${b}'s agent exited with ${signal ?? `code ${code}`} before training finished (see its messages above)`));
          }),
        ),
      );
    }
    const timeout = new Promise<never>((_, reject) => {
      const t = setTimeout(() => reject(new Error(`the rounds did not finish within ${opts.timeoutSeconds} s`)), opts.timeoutSeconds * 1000);
      t.unref();
    });
    await Promise.race([roundDone, timeout, ...agentFailures]);
    finished = true;
    await waitExit(coordinator);

    step(`3/4 sampling ${opts.sampleRows} synthetic rows from the global generator`);
    const synthetic = join(out, 'synthetic.csv');
    await runToEnd(children, ['sample', '--model', join(stateDir, 'latest.ckpt'), '--rows', String(opts.sampleRows), '--out', synthetic, '--seed', String(opts.seed)]);

    step('4/4 comparing real and synthetic data');
    const banks = Array.from({ length: opts.banks }, (_, i) => join(dataDir, `bank-${i + 1}.csv`));
    const summary = await summarizeComparison(join(dataDir, 'schema.json'), banks, synthetic);
    const seconds = (Date.now() - t0) / 1000;
    const full = { ...summary, demo: { banks: opts.banks, rows: opts.rows, rounds: opts.rounds, localSteps: opts.localSteps, batchSize: opts.batchSize, seconds } };
    writeFileSync(join(out, 'summary.json'), JSON.stringify(full, null, 2));
    process.stdout.write(formatSummary(summary) + '\n');
    // The plain sample's class shares follow the consortium's DP-noised class counts, which for a
    // class of a few dozen rows per bank are mostly noise. A fraud model is trained on that class
    // oversampled by conditioning the generator on it (fedsynth sample --where), shown here.
    const minority = minorityClass(summary);
    let oversampled: string | undefined;
    if (summary.target && minority !== undefined) {
      const where = { column: summary.target, value: minority };
      const path = join(out, `synthetic-${where.column}-${where.value}.csv`);
      process.stdout.write(`\n${where.column} = ${minority} is rare, and the plain sample's share of it follows the consortium's DP-noised count. Oversampling it: ${OVERSAMPLED_ROWS} rows with --where ${where.column}=${where.value}\n`);
      try {
        await runToEnd(children, ['sample', '--model', join(stateDir, 'latest.ckpt'), '--rows', String(OVERSAMPLED_ROWS), '--where', `${where.column}=${where.value}`, '--out', path, '--seed', String(opts.seed)]);
        const cls = await summarizeComparison(join(dataDir, 'schema.json'), banks, path, where);
        process.stdout.write(formatSummary(cls, `${where.column} = ${minority}`) + '\n');
        oversampled = path;
      } catch (e) {
        // Not fatal: the plain sample above is the demo's result; say why this part is missing.
        process.stdout.write(`oversampling ${where.column} = ${minority} failed: ${(e as Error).message} (see the sampler's message above)\n`);
      }
    }
    process.stdout.write(`\ndemo finished in ${seconds.toFixed(0)} s\nsynthetic rows: ${synthetic}\n${oversampled ? `oversampled ${summary.target} = ${minority} rows: ${oversampled}\n` : ''}summary: ${join(out, 'summary.json')}\n`);
  } finally {
    killAll();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

function fmt(v: unknown): string {
  return typeof v === 'number' ? v.toFixed(3) : String(v);
}

function parseJsonLine(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function prefixLines(prefix: string, text: string): string {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => prefix + l + '\n')
    .join('');
}

function spawnCli(children: Set<ChildProcess>, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function runToEnd(children: Set<ChildProcess>, args: string[]): Promise<void> {
  const child = spawnCli(children, args);
  child.stdout!.on('data', (d: Buffer) => process.stderr.write(prefixLines('  ', d.toString())));
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(prefixLines('  ', d.toString())));
  const code = await waitExit(child);
  if (code !== 0) throw new Error(`'fedsynth ${args[0]}' exited with code ${code}`);
}

function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}


async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the coordinator did not start listening on port ${port} within ${timeoutMs / 1000}s`);
}
