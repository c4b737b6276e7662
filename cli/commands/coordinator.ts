import type { Command } from 'commander';
import { runCoordinator } from '../../coordinator/run-coordinator';
import { SETTINGS, loadCoordinatorConfigFile, mergeCoordinatorConfig, toConfigFile, toCoordinatorSettings, type ConfigValues } from '../../coordinator/config';

/** The built-in default of a setting, as commander shows it in --help (coordinator/config.ts owns it). */
function def(option: string): string | undefined {
  const d = SETTINGS.find((s) => s.option === option)?.default;
  return d === undefined ? undefined : String(d);
}

export function register(program: Command): void {
  program
    .command('coordinator')
    .description("run the consortium's coordinator: registers banks, runs training rounds, aggregates and checkpoints the global model")
    .option('--config <file>', 'JSON config file with any of the settings below (see docs/operations.md); flags given explicitly override it')
    .option('--print-config', 'print the effective configuration (defaults < config file < flags) as a config file and exit')
    .option('--schema <file>', 'the consortium schema JSON (the same file every bank has); required here or in the config file')
    .option('--host <host>', 'address to listen on', def('host'))
    .option('--port <port>', 'port to listen on (0 = any free port)', def('port'))
    .option('--state-dir <dir>', 'durable state: database, checkpoints, coordinator identity', def('stateDir'))
    .option('--key <file>', "the coordinator's identity key file (default <state-dir>/coordinator-identity.json, created if missing)")
    .option('--allow-list <file>', 'JSON array of the banks\' public identities (`fedsynth keygen` output); without it any bank may join (development only)')
    .option('--min-clients <n>', 'banks needed to start and to commit a round', def('minClients'))
    .option('--rounds <n>', 'stop after this many committed rounds (0 = run until stopped)', def('rounds'))
    .option('--deadline <seconds>', 'time banks have to send their update', def('deadline'))
    .option('--wait-for-clients <seconds>', 'once enough banks are connected, wait this long for more before a round starts', def('waitForClients'))
    .option('--retry-limit <n>', 'failed attempts of one round before giving up (0 = never)', def('retryLimit'))
    .option('--local-steps <n>', 'local training steps per round at each bank', def('localSteps'))
    .option('--batch-size <n>', 'rows per training batch', def('batchSize'))
    .option('--lr <rate>', 'Adam learning rate of generator and discriminator', def('lr'))
    .option('--d-steps <n>', 'discriminator updates per generator update', def('dSteps'))
    .option('--g-steps <n>', 'generator updates per local step (more lets the generator reach the pair targets; costs no privacy, each costs one generator step)', def('gSteps'))
    .option('--update-clip-norm <s>', 'banks clip their whole model update (new weights minus global) to this L2 norm (> 0; bounds any one bank\'s influence on a round)', def('updateClipNorm'))
    .option('--architecture <name>', 'model architecture: mlp or ctgan', def('architecture'))
    .option('--transformer <kind>', 'row encoding: gmm (mode-specific normalisation fitted from the banks\' DP summaries) or simple (min-max from the schema)', def('transformer'))
    .option('--seed <n>', 'seed of the initial global model', def('seed'))
    .option('--generator-ema <beta>', "publish (checkpoint, /models, /sample) the generator averaged over rounds, ema = β·ema + (1−β)·FedAvg; training continues from FedAvg. Smooths the GAN's round-to-round oscillation (bench/quality-trace.ts); 0 = off", def('generatorEma'))
    .option('--classifier-weight <w>', "when the schema names a target, train an auxiliary classifier of it next to the discriminator (CTAB-GAN) and add w × its cross-entropy on generated rows to the generator's loss, so synthetic rows keep the target–feature relation; 0 = off", def('classifierWeight'))
    .option('--classifier <form>', "the auxiliary classifier's form: linear (default; under DP-SGD it ranks better, its few weights take less of the noise) or mlp (one hidden layer of 128, for a consortium whose banks all train without DP)", def('classifier'))
    .option('--label-calibration-noise <z>', "after the last round, ask every bank for per-bin counts of its rows under the published classifier of the target, with Gaussian noise at this noise multiplier (sd z·√2 per count, charged to each bank's ledger and planned into its DP-SGD noise), and publish the map that calibrates the sampled labels; 0 = off", def('labelCalibrationNoise'))
    .option('--pair-counts-noise <z>', "each bank releases, once, the two-way counts of its encoded rows for every pair of its discrete columns and numeric columns' modes (the target's left out), with Gaussian noise at this noise multiplier (sd z·√pairs per cell, charged to its ledger before its DP-SGD noise is calibrated); the coordinator merges them into targets for the generator's joint of each pair (shrunk towards independence by what the noise explains) and sends them with every later round. Applies to banks training with DP-SGD; 0 = off", def('pairCountsNoise'))
    .option('--pair-weight <w>', "weight of the generator's match to the pair targets (× --marginal-weight)", def('pairWeight'))
    .option('--point-masses', "gmm transformer: sample rows exactly at 0 or at a declared bound (no-payment amounts, codes such as -1) at their DP-noised share, and hold every numeric column's mode shares in the generator's marginal term (post-processing of the same summary). Off by default: with it, bank-marketing's minority recall in bench:privacy was lower in most runs (BENCHMARKS.md)")
    .option('--marginal-weight <w>', "add w × KL(the banks' DP-noised category shares ‖ the generated batch's) to the generator's loss, so every generated column keeps its marginal when DP noise leaves the discriminator weak (post-processing of released counts; applies to banks training with DP-SGD); 0 = off", def('marginalWeight'))
    .option('--max-frame-mb <mb>', 'largest accepted message in MiB', def('maxFrameMb'))
    .option('--exit-when-finished', 'exit after the last round is committed')
    .option('--insecure-aggregation', 'opt out of secure aggregation: banks send plaintext updates to the coordinator (required to run rounds with fewer than 3 banks)')
    .option('--distributed-dp-noise <z>', 'client-level DP inside secure aggregation: every bank adds Skellam noise in the ring so that the noise of the t guaranteed banks has std ≥ z × the ring sensitivity of one bank (off by default; each bank charges it to its ledger)')
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const file: ConfigValues = typeof o.config === 'string' ? loadCoordinatorConfigFile(o.config) : {};
      const merged = mergeCoordinatorConfig(file, o, (k) => cmd.getOptionValueSource(k));
      if (o.printConfig) {
        process.stdout.write(JSON.stringify(toConfigFile(merged), null, 2) + '\n');
        return;
      }
      const { exitWhenFinished, ...settings } = toCoordinatorSettings(merged);
      // Listening before start-up, and for every signal: a SIGTERM while the store opens, or a second
      // one while the first shuts down, must not fall through to the default (exit 143, state unclosed).
      let running: Awaited<ReturnType<typeof runCoordinator>> | undefined;
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          process.stderr.write(`coordinator: ${signal} again; already shutting down (closing the state store)\n`);
          return;
        }
        stopping = true;
        if (!running) return; // start-up finishes first, then shuts down (below)
        running.close().then(
          () => process.exit(0),
          (err: unknown) => {
            process.stderr.write(`coordinator: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      // insecureAggregation (flag --insecure-aggregation or "insecureAggregation" in the file) is in settings.
      running = await runCoordinator(settings, { exitWhenFinished });
      if (stopping) {
        stopping = false;
        stop('signal during start-up');
      }
    });
}
