import type { Command } from 'commander';
import { runAgent } from '../../client-node/run-agent';
import { ROW_COUNT_NOISE_SD } from '../../client-node/dp-row-count';
import { DEFAULT_MAX_NOISE_MULTIPLIER } from '../../client-node/local-trainer';
import { DEFAULT_SUMMARY_TARGET_SHARE } from '../../shared/privacy/summary-noise';
import { DEFAULT_CLASSIFIER_CLIP_SHARE } from '../../shared/model/dp-sgd';

export function register(program: Command): void {
  program
    .command('agent')
    .description("run a bank's on-premise agent: trains on the local CSV and sends only clipped weight updates")
    .requiredOption('--coordinator <url>', 'coordinator URL, e.g. http://coordinator.consortium:7600')
    .requiredOption('--bank-id <id>', 'this bank\'s id (lower-case letters, digits, "_", ".", "-")')
    .requiredOption('--data <csv>', "the bank's transactions CSV (read locally, never sent)")
    .requiredOption('--schema <file>', 'the consortium schema JSON distributed by the operator')
    .option('--key <file>', "this bank's identity key file (created by `fedsynth keygen`; default <state-dir>/identity.json, created if missing)")
    .option('--coordinator-key <file|base64>', "the coordinator's key to pin: its public identity JSON (the operator's <state-dir>/coordinator-public.json), or its base64 Ed25519 key (inline or in a file); else the first key seen is pinned and stored in <state-dir>/coordinator-key.txt")
    .option(
      '--consortium-directory <file>',
      "the consortium directory: the operator's allow-list JSON (the banks' public identities, `fedsynth keygen` output). Every secure-aggregation key list is verified against it; without it the bank refuses secure-aggregation rounds",
    )
    .option('--unverified-key-lists', 'explicit opt-out, without --consortium-directory: take part in secure aggregation WITHOUT verifying the key list (a malicious coordinator could substitute keys)')
    .option('--state-dir <dir>', 'local state: identity, pinned coordinator key, privacy ledger, the released row count and DP summary (reused on restart), agent-status.json', 'bank-state')
    .option('--exit-when-finished', 'exit once the coordinator announces that training is finished')
    .option('--max-row-problems <n>', 'refuse the CSV if more rows than this are invalid', '1000')
    .option('--epsilon-max <eps>', "this bank's total privacy budget ε; releases beyond it are refused", '1')
    .option('--summary-epsilon <eps>', 'ε of the DP summary (category counts and histograms) on its own; DP-SGD then calibrates to what composes with it to --epsilon-max', '0.4')
    .option('--summary-target-share <share>', "share of the summary's privacy loss spent on the target column's class counts (the rest is split evenly over the other columns)", String(DEFAULT_SUMMARY_TARGET_SHARE))
    .option('--delta <delta>', 'δ of the privacy guarantee (default min(1e-5, 1/(10·n)), n the released row count)')
    .option(
      '--row-count-noise <sd>',
      "Gaussian noise sd on this bank's row count, released once and charged to the ledger: the FedAvg weight it reports, DP-SGD's sampling rate and the default δ come from it, never from the exact count",
      String(ROW_COUNT_NOISE_SD),
    )
    .option('--target-epsilon <eps>', 'ε that DP-SGD on the discriminator may spend on its own over --dp-rounds rounds (default: σ calibrated so the ledger, summary included, composes to --epsilon-max after --dp-rounds rounds)')
    .option('--no-label-calibration', "neither plan nor answer the coordinator's label-calibration request after the last round (DP-noised counts of this bank's rows per bin of the consortium classifier's score, charged to the ledger)")
    .option('--no-pair-counts', "do not release the two-way counts of this bank's encoded rows that the consortium's model configuration plans (DP-noised, charged to the ledger once, sent with the updates; the generator's pair targets are merged from them)")
    .option('--no-dp', 'train WITHOUT record-level DP (updates are then not a DP release: ε = ∞ is reported to the coordinator); for testing only')
    .option('--noise-multiplier <sigma>', 'turn on DP-SGD with this noise multiplier σ (instead of --target-epsilon)')
    .option('--dp-rounds <n>', 'rounds the --target-epsilon is spread over when calibrating σ', '5')
    .option('--max-noise-multiplier <σ>', 'refuse to train (and stop, as with a spent budget) when the budget left calls for DP-SGD noise above this σ: such updates are mostly noise; an explicit --noise-multiplier is not capped', String(DEFAULT_MAX_NOISE_MULTIPLIER))
    .option('--max-grad-norm <c>', 'DP-SGD per-example clipping norm C', '1.0')
    .option('--classifier-clip-share <s>', "share s of C² for the target's classifier (its per-example gradient clipped to C·√s, the discriminator's to C·√(1−s)); the same guarantee either way: larger favours the sampled labels, smaller the generated columns", String(DEFAULT_CLASSIFIER_CLIP_SHARE))
    .option('--client-dp-noise <z>', 'client-level DP (DP-FedAvg): add Gaussian noise z·S/√banks to each clipped update (S = the coordinator\'s update clip norm), charged per round')
    .option('--client-dp-banks <n>', 'split the client-level noise across this many banks (only sound with secure aggregation; 1 = this bank adds all of it)', '1')
    .option('--sample-rate <q>', 'DP-SGD Poisson sampling rate per discriminator step (default batch size / the released row count)')
    .action(async (o: AgentCliOptions) => {
      await runAgent({
        coordinatorUrl: o.coordinator,
        bankId: o.bankId,
        dataPath: o.data,
        schemaPath: o.schema,
        keyPath: o.key,
        coordinatorKey: o.coordinatorKey,
        consortiumDirectoryPath: o.consortiumDirectory,
        unverifiedKeyLists: Boolean(o.unverifiedKeyLists),
        stateDir: o.stateDir,
        exitWhenFinished: Boolean(o.exitWhenFinished),
        maxRowProblems: positiveInt(o.maxRowProblems, '--max-row-problems'),
        epsilonMax: positiveNumber(o.epsilonMax, '--epsilon-max'),
        summaryEpsilon: positiveNumber(o.summaryEpsilon, '--summary-epsilon'),
        summaryTargetShare: share(o.summaryTargetShare, '--summary-target-share'),
        labelCalibration: o.labelCalibration !== false,
        pairCounts: o.pairCounts !== false,
        delta: o.delta === undefined ? undefined : positiveNumber(o.delta, '--delta'),
        rowCountNoise: positiveNumber(o.rowCountNoise, '--row-count-noise'),
        ...(o.clientDpNoise !== undefined ? { clientDp: { noiseMultiplier: positiveNumber(o.clientDpNoise, '--client-dp-noise'), banks: Math.max(1, positiveInt(o.clientDpBanks, '--client-dp-banks')) } } : {}),
        dp: o.dp === false ? undefined : {
          ...(o.targetEpsilon !== undefined
            ? { targetEpsilon: positiveNumber(o.targetEpsilon, '--target-epsilon') }
            : o.noiseMultiplier !== undefined
              ? {}
              : { totalEpsilon: defaultTotalEpsilon(positiveNumber(o.epsilonMax, '--epsilon-max'), positiveNumber(o.summaryEpsilon, '--summary-epsilon')) }),
          noiseMultiplier: o.noiseMultiplier === undefined ? undefined : positiveNumber(o.noiseMultiplier, '--noise-multiplier'),
          plannedRounds: Math.max(1, positiveInt(o.dpRounds, '--dp-rounds')),
          maxNoiseMultiplier: positiveNumber(o.maxNoiseMultiplier, '--max-noise-multiplier'),
          maxGradNorm: positiveNumber(o.maxGradNorm, '--max-grad-norm'),
          classifierClipShare: share(o.classifierClipShare, '--classifier-clip-share'),
          sampleRate: o.sampleRate === undefined ? undefined : sampleRate(o.sampleRate),
        },
      });
    });
}

/** By default DP-SGD may spend what composes with the summary (and any earlier charge) to the whole budget. */
function defaultTotalEpsilon(epsilonMax: number, summaryEpsilon: number): number {
  if (!(summaryEpsilon < epsilonMax)) throw new Error(`--summary-epsilon (${summaryEpsilon}) leaves nothing of --epsilon-max (${epsilonMax}) for training; raise the budget or lower the summary's ε`);
  return epsilonMax;
}

interface AgentCliOptions {
  dp?: boolean;
  clientDpNoise?: string;
  clientDpBanks: string;
  coordinator: string;
  bankId: string;
  data: string;
  schema: string;
  key?: string;
  coordinatorKey?: string;
  consortiumDirectory?: string;
  unverifiedKeyLists?: boolean;
  stateDir: string;
  exitWhenFinished?: boolean;
  maxRowProblems: string;
  epsilonMax: string;
  summaryEpsilon: string;
  summaryTargetShare: string;
  rowCountNoise: string;
  labelCalibration?: boolean;
  pairCounts?: boolean;
  delta?: string;
  targetEpsilon?: string;
  noiseMultiplier?: string;
  dpRounds: string;
  maxNoiseMultiplier: string;
  maxGradNorm: string;
  classifierClipShare: string;
  sampleRate?: string;
}

function share(raw: string, flag: string): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0 || v >= 1) throw new Error(`${flag} must be a number in (0, 1), got '${raw}'`);
  return v;
}

function sampleRate(raw: string): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0 || v > 1) throw new Error(`--sample-rate must be a number in (0, 1], got '${raw}'`);
  return v;
}

export function positiveNumber(raw: string, flag: string): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} must be a positive number, got '${raw}'`);
  return v;
}

export function positiveInt(raw: string, flag: string): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${flag} must be a non-negative integer, got '${raw}'`);
  return v;
}
