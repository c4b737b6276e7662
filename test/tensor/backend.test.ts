import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND_ORDER, parseBackendName, selectBackend } from '../../shared/tensor/backend';
import { fastGradientsRegistered } from '../../shared/tensor/fast-gradients';

describe('selectBackend', () => {
  const saved = process.env.FEDSYNTH_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.FEDSYNTH_BACKEND;
    else process.env.FEDSYNTH_BACKEND = saved;
  });

  it('starts the forced wasm backend, logs one line, and registers the fast gradients', async () => {
    const lines: string[] = [];
    const sel = await selectBackend({ force: 'wasm', log: (l) => lines.push(l) });
    expect(sel.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(sel.tried).toEqual([{ name: 'wasm' }]);
    expect(fastGradientsRegistered()).toBe(true);
    // Idempotent: a second identical call neither re-initialises nor logs again.
    const again = await selectBackend({ force: 'wasm', log: (l) => lines.push(l) });
    expect(again).toBe(sel);
    expect(lines.length).toBeLessThanOrEqual(1);
  });

  it('in auto mode tries backends in preference order and reports why each skipped one failed', async () => {
    const lines: string[] = [];
    const sel = await selectBackend({ ignoreEnv: true, log: (l) => lines.push(l) });
    const names = sel.tried.map((t) => t.name);
    expect(names).toEqual(BACKEND_ORDER.slice(0, names.length));
    const last = sel.tried[sel.tried.length - 1]!;
    expect(last.error).toBeUndefined();
    for (const t of sel.tried.slice(0, -1)) expect(t.error).toMatch(/\S/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`tfjs backend ${last.name}`);
    await selectBackend({ force: 'wasm', log: () => {} });
  });

  it('honours FEDSYNTH_BACKEND and switches back when the active backend changed', async () => {
    process.env.FEDSYNTH_BACKEND = 'cpu';
    const cpu = await selectBackend({ log: () => {} });
    expect(cpu.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    delete process.env.FEDSYNTH_BACKEND;
    const wasm = await selectBackend({ force: 'wasm', log: () => {} });
    expect(wasm.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('rejects an unknown backend name with the allowed names', async () => {
    expect(() => parseBackendName('cuda')).toThrow(/unknown tfjs backend 'cuda'.*tensorflow-gpu, tensorflow, wasm, cpu/);
    process.env.FEDSYNTH_BACKEND = 'webgpu';
    await expect(selectBackend({ log: () => {} })).rejects.toThrow(/unknown tfjs backend 'webgpu'/);
    expect(parseBackendName(' Node ')).toBe('tensorflow');
  });

  it('fails clearly when a forced native backend is not installed', async () => {
    const r = selectBackend({ force: 'tensorflow-gpu', log: () => {} });
    // Only meaningful where tfjs-node-gpu is absent (as on CI); where present it must start.
    const ok = await r.then(
      (s) => s.name === 'tensorflow',
      (e: Error) => {
        expect(e.message).toMatch(/could not start forced tfjs backend 'tensorflow-gpu'/);
        return true;
      },
    );
    expect(ok).toBe(true);
    await selectBackend({ force: 'wasm', log: () => {} });
  });
});
