// Speed of shared/privacy's Skellam sampler (CSPRNG-driven; Knuth below μ = 10, Hörmann's PTRS above).
//   node bin/run-ts.mjs bench/skellam.ts [n]
// Prints the median wall time of 5 runs drawing n (default 800,000) samples at several μ. Not part of
// BENCHMARKS.md; a quick check that one bank's noise for an ~800k-parameter update stays well under 1 s.
import { CryptoRandom, skellam } from '../shared/privacy/secure-noise';

const n = Number(process.argv[2] ?? 800_000);
const rng = new CryptoRandom();
skellam(50_000, 1e6, rng); // warm-up (JIT)
for (const mu of [1, 5, 50, 1e4, 1e6, 1e9, 1e12]) {
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    skellam(n, mu, rng);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(`μ = ${mu.toExponential(0).padEnd(6)} ${n} samples: ${times[2].toFixed(0).padStart(5)} ms (median of 5), ${((times[2] * 1e6) / n).toFixed(0)} ns/sample`);
}
