// Worker-thread entry of noise-prefetch.ts: loads TypeScript through tsx (as bin/*.mjs do) and runs
// the prefetch loop, so the sampler is the one module shared with the main thread.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { runNoiseWorker } = await import('./noise-prefetch.ts');
runNoiseWorker(workerData);
