import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('status')
    .description("show a coordinator's state: rounds, banks online, last update, ε spent per bank, model versions")
    .option('--url <url>', 'the coordinator URL', 'http://127.0.0.1:7600')
    .option('--json', 'print the raw JSON')
    .action(async (o: { url: string; json?: boolean }) => {
      let res: Response;
      try {
        res = await fetch(new URL('/status', o.url));
      } catch (err) {
        throw new Error(`cannot reach the coordinator at ${o.url}: ${(err as Error).cause ?? (err as Error).message}`);
      }
      if (!res.ok) throw new Error(`the coordinator answered ${res.status} ${res.statusText}`);
      const s = (await res.json()) as StatusJson;
      if (o.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      process.stdout.write(formatStatus(s) + '\n');
    });
}

interface StatusJson {
  round?: { state: string; roundId: number; modelVersion: number; roundsCommitted: number; participants: string[]; reported: string[] };
  banksOnline?: string[];
  banks?: { bankId: string; lastSeen?: string | null; epsilon?: number | null; delta?: number | null; nonPrivate?: boolean }[];
  models?: { version: number; round: number; createdAt: string; sha256?: string }[];
  rounds?: { roundId: number; state: string; banks?: number; finishedAt?: string | null }[];
  [k: string]: unknown;
}

export function formatStatus(s: StatusJson): string {
  const out: string[] = [];
  const r = s.round;
  if (r) {
    out.push(`state: ${r.state}   round: ${r.roundId}   model version: ${r.modelVersion}   rounds committed: ${r.roundsCommitted}`);
    if (r.participants.length) out.push(`this round: ${r.reported.length}/${r.participants.length} banks reported (${r.participants.join(', ')})`);
  }
  const online = new Set(s.banksOnline ?? []);
  out.push('', `${'bank'.padEnd(16)} ${'online'.padEnd(7)} ${'last seen'.padEnd(25)} ε spent`);
  for (const b of s.banks ?? []) {
    const eps = b.nonPrivate ? '∞ (trained without DP-SGD)' : b.epsilon === null || b.epsilon === undefined ? '-' : b.epsilon.toFixed(3);
    out.push(`${b.bankId.padEnd(16)} ${(online.has(b.bankId) ? 'yes' : 'no').padEnd(7)} ${String(b.lastSeen ?? '-').padEnd(25)} ${eps}`);
  }
  if (s.models?.length) {
    out.push('', 'model versions:');
    for (const m of s.models.slice(-5)) out.push(`  v${m.version}  round ${m.round}  ${m.createdAt}${m.sha256 ? '  sha256 ' + m.sha256.slice(0, 16) : ''}`);
  }
  return out.join('\n');
}
