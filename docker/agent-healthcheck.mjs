// Container health check for the bank agent, which serves no port of its own.
// Healthy when: PID 1 is the fedsynth agent, its state dir is writable, and, if the agent writes a
// heartbeat file (<state-dir>/heartbeat, mtime touched while connected), it is younger than the limit.
// It also reports secure-aggregation key-list verification from <state-dir>/agent-status.json
// (shown in `docker inspect`'s health log): unhealthy when the agent has no consortium directory and
// therefore refuses every secure-aggregation round; a WARNING when verification is explicitly off.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const stateDir = process.env.FEDSYNTH_STATE_DIR ?? '/var/lib/fedsynth/state';
const maxAgeS = Number(process.env.FEDSYNTH_HEARTBEAT_MAX_AGE_S ?? '120');

function fail(why) {
  process.stderr.write(`unhealthy: ${why}\n`);
  process.exit(1);
}

try {
  const cmdline = readFileSync('/proc/1/cmdline', 'utf8').split('\0');
  if (!cmdline.includes('agent')) fail(`PID 1 is not the fedsynth agent (${cmdline.join(' ').trim()})`);
} catch (e) {
  fail(`cannot read /proc/1/cmdline: ${e.message}`);
}
try {
  accessSync(stateDir, constants.W_OK);
} catch {
  fail(`state dir ${stateDir} is missing or not writable`);
}
let heartbeat;
try {
  heartbeat = statSync(join(stateDir, 'heartbeat'));
} catch {
  heartbeat = undefined; // not written yet (the agent writes it every 15 s once started): PID 1 liveness only
}
if (heartbeat) {
  const age = (Date.now() - heartbeat.mtimeMs) / 1000;
  if (age > maxAgeS) fail(`heartbeat is ${age.toFixed(0)} s old (limit ${maxAgeS} s)`);
}
let verification = 'unknown (no agent-status.json yet)';
try {
  const status = JSON.parse(readFileSync(join(stateDir, 'agent-status.json'), 'utf8'));
  const sa = status.secureAggregation ?? {};
  if (sa.keyListVerification === 'refused') fail(`no consortium directory: the agent refuses every secure-aggregation round (pass --consortium-directory)`);
  verification =
    sa.keyListVerification === 'verified'
      ? `verified against ${(sa.banks ?? []).length} banks (${sa.directory})`
      : `WARNING: ${String(sa.keyListVerification).toUpperCase()} (${sa.note ?? 'no consortium directory'})`;
  if (sa.lastRefusal) verification += `; last refused round ${sa.lastRefusal.roundId}: ${sa.lastRefusal.code}`;
} catch {
  /* not written yet: the agent writes it at start-up */
}
process.stdout.write(`healthy; secure-aggregation key lists: ${verification}\n`);
process.exit(0);
