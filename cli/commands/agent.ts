import type { Command } from 'commander';
import { runAgent } from '../../client-node/run-agent';

export function register(program: Command): void {
  program
    .command('agent')
    .description("run a bank's on-premise agent: trains on the local CSV and sends only clipped weight updates")
    .requiredOption('--coordinator <url>', 'coordinator URL, e.g. http://coordinator.consortium:7600')
    .requiredOption('--bank-id <id>', 'this bank\'s id (lower-case letters, digits, "_", ".", "-")')
    .requiredOption('--data <csv>', "the bank's transactions CSV (read locally, never sent)")
    .requiredOption('--schema <file>', 'the consortium schema JSON distributed by the operator')
    .option('--key <file>', "this bank's identity key file (created by `fedsynth keygen`; default <state-dir>/identity.json, created if missing)")
    .option('--coordinator-key <base64|file>', "the coordinator's Ed25519 public key to pin (else the first key seen is pinned and stored)")
    .option('--state-dir <dir>', 'local state: identity, pinned coordinator key, privacy ledger', 'bank-state')
    .option('--exit-when-finished', 'exit once the coordinator announces that training is finished')
    .option('--max-row-problems <n>', 'refuse the CSV if more rows than this are invalid', '1000')
    .option('--epsilon-max <eps>', "this bank's total privacy budget ε; releases beyond it are refused", '1')
    .option('--summary-epsilon <eps>', 'part of the budget spent on the DP category-count summary', '0.2')
    .option('--delta <delta>', 'δ of the privacy guarantee (default min(1e-5, 1/(10·rows)))')
    .action(async (o: AgentCliOptions) => {
      await runAgent({
        coordinatorUrl: o.coordinator,
        bankId: o.bankId,
        dataPath: o.data,
        schemaPath: o.schema,
        keyPath: o.key,
        coordinatorKey: o.coordinatorKey,
        stateDir: o.stateDir,
        exitWhenFinished: Boolean(o.exitWhenFinished),
        maxRowProblems: positiveInt(o.maxRowProblems, '--max-row-problems'),
        epsilonMax: positiveNumber(o.epsilonMax, '--epsilon-max'),
        summaryEpsilon: positiveNumber(o.summaryEpsilon, '--summary-epsilon'),
        delta: o.delta === undefined ? undefined : positiveNumber(o.delta, '--delta'),
      });
    });
}

interface AgentCliOptions {
  coordinator: string;
  bankId: string;
  data: string;
  schema: string;
  key?: string;
  coordinatorKey?: string;
  stateDir: string;
  exitWhenFinished?: boolean;
  maxRowProblems: string;
  epsilonMax: string;
  summaryEpsilon: string;
  delta?: string;
}

export function positiveNumber(raw: string, flag: string): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} must be a positive number, got '${raw}'`);
  return v;
}

export function positiveInt(raw: string, flag: string): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${flag} must be a non-negative integer, got '${raw}'`);
  return v;
}
