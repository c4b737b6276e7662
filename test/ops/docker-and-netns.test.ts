// Ops artefacts: static checks of the Docker images and compose file (Docker cannot run on the
// development machines), and an end-to-end run of the network-namespace consortium where the kernel
// lets us create namespaces (root + `ip netns`).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const read = (p: string): string => readFileSync(join(root, p), 'utf8');

// Dockerfile instructions with line continuations joined, comments dropped.
function instructions(dockerfile: string): { op: string; args: string }[] {
  return dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\S+)\s*(.*)$/.exec(l)!;
      return { op: m[1].toUpperCase(), args: m[2] };
    });
}

// The stage after the last FROM is what ships.
function finalStage(ins: { op: string; args: string }[]): { op: string; args: string }[] {
  const last = ins.map((i) => i.op).lastIndexOf('FROM');
  return ins.slice(last);
}

for (const [name, file] of [
  ['coordinator', 'docker/coordinator.Dockerfile'],
  ['agent', 'docker/agent.Dockerfile'],
] as const) {
  describe(`${file}`, () => {
    const ins = instructions(read(file));
    const runtime = finalStage(ins);

    it('is multi-stage: a build stage with node-gyp tools, a slim runtime without them', () => {
      const froms = ins.filter((i) => i.op === 'FROM');
      expect(froms.length).toBeGreaterThanOrEqual(2);
      expect(runtime[0].args).toMatch(/^node:20-bookworm-slim\b/);
      const buildRuns = ins.slice(0, ins.indexOf(runtime[0])).filter((i) => i.op === 'RUN').map((i) => i.args).join(' ');
      for (const tool of ['python3', 'make', 'g++']) expect(buildRuns).toContain(tool);
      const runtimeRuns = runtime.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ');
      expect(runtimeRuns).not.toMatch(/\bg\+\+|build-essential|npm (ci|install)/);
    });

    it('installs production dependencies only, from the lockfile', () => {
      const npm = ins.filter((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args)).map((i) => i.args);
      expect(npm.some((a) => /npm ci\b.*--omit=dev/.test(a))).toBe(true);
      expect(npm.some((a) => /npm install\b/.test(a))).toBe(false);
      expect(runtime.some((i) => i.op === 'COPY' && /--from=\S+\s+\S*node_modules/.test(i.args))).toBe(true);
    });

    it('ships every source folder the CLI imports, the .proto schema included', () => {
      const copied = runtime.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).map((i) => i.args.split(/\s+/)[0]);
      // cli/commands/index.ts imports every command statically, so the agent image needs coordinator/ too.
      for (const dir of ['bin', 'cli', 'coordinator', 'client-node', 'protocol', 'shared']) {
        expect(copied, `${dir} must be copied into the runtime image`).toContain(dir);
        expect(existsSync(join(root, dir)), `${dir} exists in the repo`).toBe(true);
      }
      // The proto is read at runtime from protocol/schema; it must exist and not be excluded from the context.
      expect(existsSync(join(root, 'protocol/schema/fedsynth.proto'))).toBe(true);
      const ignored = read('.dockerignore').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
      for (const dir of ['bin', 'cli', 'coordinator', 'client-node', 'protocol', 'shared', 'protocol/schema', '*.proto']) {
        expect(ignored).not.toContain(dir);
      }
      for (const heavy of ['node_modules', '.git', 'data', 'test', 'bench']) expect(ignored).toContain(heavy);
    });

    it('runs as a non-root user, in production mode, through the CLI entry point', () => {
      const users = runtime.filter((i) => i.op === 'USER').map((i) => i.args.trim());
      expect(users.length).toBeGreaterThan(0);
      expect(users[users.length - 1]).not.toMatch(/^(root|0)(:|$)/);
      expect(runtime.some((i) => i.op === 'ENV' && /NODE_ENV=production/.test(i.args))).toBe(true);
      const entry = runtime.filter((i) => i.op === 'ENTRYPOINT').pop();
      expect(entry && JSON.parse(entry.args)).toEqual(['node', 'bin/fedsynth.mjs']);
      const cmd = runtime.filter((i) => i.op === 'CMD').pop();
      expect(cmd && (JSON.parse(cmd.args) as string[])[0]).toBe(name);
    });

    it('has a health check that fits the service', () => {
      const hc = runtime.filter((i) => i.op === 'HEALTHCHECK');
      expect(hc).toHaveLength(1);
      expect(hc[0].args).toMatch(/CMD/);
      if (name === 'coordinator') expect(hc[0].args).toContain('/healthz');
      else {
        expect(hc[0].args).toContain('docker/agent-healthcheck.mjs');
        expect(runtime.some((i) => i.op === 'COPY' && i.args.includes('docker/agent-healthcheck.mjs'))).toBe(true);
      }
    });
  });
}

describe('docker/agent-healthcheck.mjs', () => {
  it('is valid JavaScript and fails outside an agent container (PID 1 is not the agent)', () => {
    const r = spawnSync(process.execPath, [join(root, 'docker/agent-healthcheck.mjs')], { encoding: 'utf8', env: { ...process.env, FEDSYNTH_STATE_DIR: root } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/unhealthy: (PID 1 is not the fedsynth agent|cannot read \/proc\/1\/cmdline)/);
  });
});

describe('docker/compose.yaml', () => {
  const text = read('docker/compose.yaml');
  // python3 with PyYAML parses it (and resolves the <<: merge keys) when available; otherwise the
  // structural checks below still run on the text.
  const py = spawnSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: text, encoding: 'utf8' });
  const parsed = py.status === 0 ? (JSON.parse(py.stdout) as Record<string, any>) : undefined;

  it('has no tabs (YAML forbids them in indentation)', () => {
    expect(text).not.toMatch(/\t/);
  });

  it.skipIf(!parsed)('defines the coordinator and three banks with healthchecks, volumes and a private network', () => {
    const services = parsed!.services as Record<string, any>;
    expect(Object.keys(services).sort()).toEqual(['bank-1', 'bank-2', 'bank-3', 'coordinator']);
    expect(parsed!.networks.consortium.internal).toBe(true);
    expect(services.coordinator.healthcheck.test.join(' ')).toContain('/healthz');
    const coordVolumes = (services.coordinator.volumes as string[]).join(' ');
    expect(coordVolumes).toMatch(/coordinator-keys:\/var\/lib\/fedsynth\/keys/);
    expect(coordVolumes).toMatch(/coordinator-state:\/var\/lib\/fedsynth\/state/);
    expect(services.coordinator.command.join(' ')).toContain('--allow-list=');
    for (const n of [1, 2, 3]) {
      const bank = services[`bank-${n}`];
      expect(bank.depends_on.coordinator.condition).toBe('service_healthy');
      expect(bank.healthcheck).toBeDefined();
      expect(bank.networks).toEqual(['consortium']);
      const vols = bank.volumes as string[];
      expect(vols).toContain(`bank-${n}-keys:/var/lib/fedsynth/keys`);
      expect(vols).toContain(`bank-${n}-state:/var/lib/fedsynth/state`);
      // Each bank mounts only its own CSV, read-only.
      expect(vols).toContain(`../data/bank-${n}.csv:/data/bank.csv:ro`);
      expect(vols.filter((v) => /bank-\d\.csv/.test(v))).toHaveLength(1);
      const cmd = (bank.command as string[]).join(' ');
      expect(cmd).toContain(`--bank-id=bank-${n}`);
      expect(cmd).toContain('--coordinator-key=');
      for (const v of [`bank-${n}-keys`, `bank-${n}-state`]) expect(parsed!.volumes).toHaveProperty(v);
    }
  });
});

// ---- end to end: the namespace consortium, only where namespaces can be created ----
function netnsSupport(): { ok: boolean; why: string } {
  if (process.platform !== 'linux') return { ok: false, why: 'not Linux' };
  if (process.getuid?.() !== 0) return { ok: false, why: 'not running as root' };
  const probe = `fs-vtprobe-${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.error) return { ok: false, why: `iproute2 'ip' not available (${add.error.message})` };
  if (add.status !== 0) return { ok: false, why: `'ip netns add' failed: ${add.stderr.trim()}` };
  spawnSync('ip', ['netns', 'del', probe]);
  return { ok: true, why: '' };
}
const support = netnsSupport();
if (!support.ok) console.warn(`[test/ops] netns consortium end-to-end test skipped: ${support.why}`);

describe('scripts/netns-consortium.sh', () => {
  it('is valid bash', () => {
    execFileSync('bash', ['-n', join(root, 'scripts/netns-consortium.sh')]);
  });

  it.skipIf(!support.ok)(
    'runs 4 hosts, commits round 2 without the cut bank, and bank 3 rejoins a later round',
    async () => {
      // Async spawn: a blocking spawnSync would starve vitest's worker RPC for the whole run.
      const { status, out } = await new Promise<{ status: number | null; out: string }>((resolve, reject) => {
        const child = spawn('bash', [join(root, 'scripts/netns-consortium.sh')], { env: { ...process.env, FS_TIMEOUT: '240' } });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ status: code, out }));
      });
      expect(status, out.slice(-4000)).toBe(0);
      const m2 = /round 2 committed: banks=(\d+) dropped=(\d+)/.exec(out);
      expect(m2, out.slice(-4000)).not.toBeNull();
      expect(Number(m2![1]) === 2 || Number(m2![2]) >= 1).toBe(true);
      const back = /bank-3 sent its update for round (\d+)/.exec(out);
      expect(back).not.toBeNull();
      expect(Number(back![1])).toBeGreaterThan(2);
      expect(out).toMatch(/training finished: \d+ rounds/);
      // Teardown left no namespaces behind.
      const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
      expect(left).not.toMatch(/\bfs-(hub|coord|bank[123])\b/);
    },
    300_000,
  );
});
