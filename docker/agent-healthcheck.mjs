// Container health check for the bank agent, which serves no port of its own.
// Healthy when: PID 1 is the fedsynth agent, its state dir is writable, and, if the agent writes a
// heartbeat file (<state-dir>/heartbeat, mtime touched while connected), it is younger than the limit.
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
process.exit(0);
