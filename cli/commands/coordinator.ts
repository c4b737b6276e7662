import type { Command } from 'commander';
import { runCoordinator } from '../../coordinator/run-coordinator';
import { positiveInt, positiveNumber } from './agent';

export function register(program: Command): void {
  program
    .command('coordinator')
    .description("run the consortium's coordinator: registers banks, runs training rounds, aggregates and checkpoints the global model")
    .requiredOption('--schema <file>', 'the consortium schema JSON (the same file every bank has)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 = any free port)', '7600')
    .option('--state-dir <dir>', 'durable state: database, checkpoints, coordinator identity', 'coordinator-state')
    .option('--key <file>', "the coordinator's identity key file (default <state-dir>/coordinator-identity.json, created if missing)")
    .option('--allow-list <file>', 'JSON array of the banks\' public identities (`fedsynth keygen` output); without it any bank may join (development only)')
    .option('--min-clients <n>', 'banks needed to start and to commit a round', '2')
    .option('--rounds <n>', 'stop after this many committed rounds (0 = run until stopped)', '5')
    .option('--deadline <seconds>', 'time banks have to send their update', '300')
    .option('--wait-for-clients <seconds>', 'once enough banks are connected, wait this long for more before a round starts', '2')
    .option('--retry-limit <n>', 'failed attempts of one round before giving up (0 = never)', '0')
    .option('--local-steps <n>', 'local training steps per round at each bank', '50')
    .option('--batch-size <n>', 'rows per training batch', '500')
    .option('--lr <rate>', 'Adam learning rate of generator and discriminator', '2e-4')
    .option('--d-steps <n>', 'discriminator updates per generator update', '1')
    .option('--update-clip-norm <s>', 'banks clip their whole model update (new weights minus global) to this L2 norm (> 0; bounds any one bank\'s influence on a round)', '10')
    .option('--architecture <name>', 'model architecture: mlp or ctgan', 'mlp')
    .option('--seed <n>', 'seed of the initial global model', '42')
    .option('--max-frame-mb <mb>', 'largest accepted message in MiB', '32')
    .option('--exit-when-finished', 'exit after the last round is committed')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const str = (k: string): string => String(o[k]);
      const architecture = str('architecture');
      if (architecture !== 'mlp' && architecture !== 'ctgan') throw new Error(`--architecture must be mlp or ctgan, got '${architecture}'`);
      const lr = positiveNumber(str('lr'), '--lr');
      const running = await runCoordinator(
        {
          host: str('host'),
          port: positiveInt(str('port'), '--port'),
          schemaPath: str('schema'),
          stateDir: str('stateDir'),
          keyPath: o.key as string | undefined,
          allowListPath: o.allowList as string | undefined,
          model: { architecture, seed: positiveInt(str('seed'), '--seed') },
          policy: {
            minClients: Math.max(1, positiveInt(str('minClients'), '--min-clients')),
            maxRounds: positiveInt(str('rounds'), '--rounds'),
            deadlineMs: positiveNumber(str('deadline'), '--deadline') * 1000,
            waitForClientsMs: Number(str('waitForClients')) * 1000 || 0,
            retryLimit: positiveInt(str('retryLimit'), '--retry-limit'),
          },
          plan: {
            localSteps: Math.max(1, positiveInt(str('localSteps'), '--local-steps')),
            batchSize: Math.max(1, positiveInt(str('batchSize'), '--batch-size')),
            lrGenerator: lr,
            lrDiscriminator: lr,
            dSteps: Math.max(1, positiveInt(str('dSteps'), '--d-steps')),
            loss: architecture === 'ctgan' ? 'wgan-gp' : 'ns',
            updateClipNorm: positiveNumber(str('updateClipNorm'), '--update-clip-norm'),
          },
          dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 },
          maxFrameBytes: Math.round(positiveNumber(str('maxFrameMb'), '--max-frame-mb') * 1024 * 1024),
        },
        { exitWhenFinished: Boolean(o.exitWhenFinished) },
      );
      const stop = async (): Promise<void> => {
        await running.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
