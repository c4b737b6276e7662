// Run-time choice of the tfjs backend. The native node backends are optional dependencies that are
// usually missing (no prebuilt binary), so they are probed with dynamic import() inside try/catch;
// wasm (SIMD) is the normal backend, the pure-JS cpu backend (~25x slower) is the last resort.
import * as tf from '@tensorflow/tfjs';
import { registerFastGradients } from './fast-gradients';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** Preference order when nothing is forced. */
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface SelectBackendOptions {
  /** Use exactly this backend (fails if it cannot start). Defaults to env FEDSYNTH_BACKEND. */
  force?: BackendName;
  /** Receives the one-line report of what was chosen; default writes to stderr. */
  log?: (line: string) => void;
  /** Skip the environment variable (tests). */
  ignoreEnv?: boolean;
}

export interface BackendAttempt {
  name: BackendName;
  error?: string;
}

export interface BackendSelection {
  /** The tfjs backend name now active (tfjs calls both native backends 'tensorflow'). */
  name: string;
  /** What was tried, in order, with the reason each one that did not start failed. */
  tried: BackendAttempt[];
}

/** Accepts the user-facing names and a few aliases ('node', 'gpu', 'tfjs-node'). */
export function parseBackendName(raw: string): BackendName {
  const v = raw.trim().toLowerCase();
  const alias: Record<string, BackendName> = {
    'tensorflow-gpu': 'tensorflow-gpu', gpu: 'tensorflow-gpu', 'tfjs-node-gpu': 'tensorflow-gpu', 'node-gpu': 'tensorflow-gpu',
    tensorflow: 'tensorflow', node: 'tensorflow', 'tfjs-node': 'tensorflow',
    wasm: 'wasm', cpu: 'cpu',
  };
  const name = alias[v];
  if (!name) {
    throw new Error(`unknown tfjs backend '${raw}': use one of tensorflow-gpu, tensorflow, wasm, cpu`);
  }
  return name;
}

// Module specifiers held in variables so TypeScript does not require the optional packages.
const NODE_GPU = '@tensorflow/tfjs-node-gpu';
const NODE_CPU = '@tensorflow/tfjs-node';
const WASM = '@tensorflow/tfjs-backend-wasm';

async function tryStart(name: BackendName): Promise<string | undefined> {
  try {
    if (name === 'tensorflow-gpu') await import(/* @vite-ignore */ NODE_GPU);
    else if (name === 'tensorflow') await import(/* @vite-ignore */ NODE_CPU);
    else if (name === 'wasm') await import(/* @vite-ignore */ WASM);
    const tfName = name === 'tensorflow-gpu' ? 'tensorflow' : name;
    if (!tf.findBackendFactory(tfName)) return `backend '${tfName}' did not register after import`;
    // setBackend resolves false (it does not throw) when initialisation fails.
    const ok = await tf.setBackend(tfName);
    if (!ok) return `tf.setBackend('${tfName}') returned false`;
    await tf.ready();
    return undefined;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return msg.split('\n')[0]!.slice(0, 200);
  }
}

let current: { key: string; result: Promise<BackendSelection> } | undefined;

/**
 * Starts the best available backend (or the forced one) and registers the fast gradients.
 * Idempotent: repeated calls with the same request return the same selection.
 */
export function selectBackend(opts: SelectBackendOptions = {}): Promise<BackendSelection> {
  const envRaw = opts.ignoreEnv ? undefined : process.env.FEDSYNTH_BACKEND;
  let forced: BackendName | undefined;
  try {
    forced = opts.force ?? (envRaw && envRaw.trim() !== '' ? parseBackendName(envRaw) : undefined);
  } catch (e) {
    return Promise.reject(e);
  }
  const key = forced ?? 'auto';
  if (current && current.key === key) {
    const cached = current.result;
    // Still valid only while nobody switched tfjs to another backend in between.
    return cached.then((sel) => (tf.getBackend() === sel.name ? sel : selectAgain(key, forced, opts)));
  }
  return selectAgain(key, forced, opts);
}

function selectAgain(key: string, forced: BackendName | undefined, opts: SelectBackendOptions): Promise<BackendSelection> {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const result = (async (): Promise<BackendSelection> => {
    registerFastGradients();
    const order = forced ? [forced] : BACKEND_ORDER;
    const tried: BackendAttempt[] = [];
    for (const name of order) {
      const error = await tryStart(name);
      tried.push(error === undefined ? { name } : { name, error });
      if (error === undefined) {
        const skipped = tried.filter((t) => t.error).map((t) => `${t.name}: ${t.error}`);
        log(`fedsynth: tfjs backend ${name}${skipped.length ? ` (unavailable: ${skipped.join('; ')})` : ''}`);
        return { name: tf.getBackend(), tried };
      }
    }
    const why = tried.map((t) => `${t.name}: ${t.error}`).join('; ');
    throw new Error(forced ? `could not start forced tfjs backend '${forced}' (${why})` : `no tfjs backend could start (${why})`);
  })();
  current = { key, result };
  // A failed attempt must not poison later calls.
  result.catch(() => {
    if (current?.result === result) current = undefined;
  });
  return result;
}
