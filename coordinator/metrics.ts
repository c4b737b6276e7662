// Coordinator counters and a Prometheus text exposition (version 0.0.4), without a client library.
import type { RoundSnapshot } from './rounds';

/** A cumulative Prometheus histogram. */
class Histogram {
  private readonly counts: number[];
  private count = 0;
  private sum = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }

  observe(v: number): void {
    this.count += 1;
    this.sum += v;
    this.buckets.forEach((b, i) => {
      if (v <= b) this.counts[i]! += 1;
    });
  }

  samples(name: string): string[] {
    return [
      ...this.buckets.map((b, i) => `${name}_bucket{le="${b}"} ${this.counts[i]}`),
      `${name}_bucket{le="+Inf"} ${this.count}`,
      `${name}_sum ${this.sum}`,
      `${name}_count ${this.count}`,
    ];
  }
}

/** Round wall time, from round start to durable commit (training at the banks dominates). */
const ROUND_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800];
/** Aggregation plus durable commit alone (the coordinator's own overhead per round). */
const COMMIT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

/** Prometheus label values: backslash, double quote and newline escaped. */
function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export class Metrics {
  connections = 0;
  bytesReceived = 0;
  bytesSent = 0;
  framesReceived = 0;
  roundsCommitted = 0;
  roundsFailed = 0;
  readonly rejected = new Map<string, number>();
  /** Secure-aggregation rounds a bank refused (secaggAbort), by the bank's reason code. */
  readonly secaggAborts = new Map<string, number>();
  private readonly roundDuration = new Histogram(ROUND_BUCKETS);
  private readonly commitDuration = new Histogram(COMMIT_BUCKETS);
  private readonly started = Date.now();

  reject(code: string): void {
    this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
  }

  secaggAbort(code: string): void {
    this.secaggAborts.set(code, (this.secaggAborts.get(code) ?? 0) + 1);
  }

  /** Aggregate + commit time of one round. */
  observeRound(seconds: number): void {
    this.commitDuration.observe(seconds);
  }

  /** Whole round: round_started to round committed. */
  observeRoundDuration(seconds: number): void {
    this.roundDuration.observe(seconds);
  }

  prometheus(banksOnline: number, round: RoundSnapshot): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: string[]): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples);
    };
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    metric('fedsynth_banks_online', 'gauge', 'Banks currently connected and registered.', [`fedsynth_banks_online ${banksOnline}`]);
    metric('fedsynth_model_version', 'gauge', 'Latest committed global model version.', [`fedsynth_model_version ${round.modelVersion}`]);
    metric('fedsynth_round_id', 'gauge', 'The open round, or the next one when none is open.', [`fedsynth_round_id ${round.roundId}`]);
    metric('fedsynth_round_participants', 'gauge', 'Banks taking part in the open round.', [`fedsynth_round_participants ${round.participants.length}`]);
    metric('fedsynth_rounds_committed', 'gauge', 'Rounds committed in total (durable, survives restarts).', [`fedsynth_rounds_committed ${round.roundsCommitted}`]);
    metric('fedsynth_rounds_committed_total', 'counter', 'Rounds committed by this process.', [`fedsynth_rounds_committed_total ${this.roundsCommitted}`]);
    metric('fedsynth_rounds_failed_total', 'counter', 'Round attempts that failed.', [`fedsynth_rounds_failed_total ${this.roundsFailed}`]);
    metric('fedsynth_connections_total', 'counter', 'Socket connections accepted.', [`fedsynth_connections_total ${this.connections}`]);
    metric('fedsynth_frames_received_total', 'counter', 'Frames received from banks.', [`fedsynth_frames_received_total ${this.framesReceived}`]);
    metric('fedsynth_bytes_received_total', 'counter', 'Frame bytes received from banks.', [`fedsynth_bytes_received_total ${this.bytesReceived}`]);
    metric('fedsynth_bytes_sent_total', 'counter', 'Frame bytes sent to banks.', [`fedsynth_bytes_sent_total ${this.bytesSent}`]);
    metric(
      'fedsynth_rejected_messages_total',
      'counter',
      'Messages rejected, by reason code.',
      [...this.rejected].sort(([a], [b]) => a.localeCompare(b)).map(([code, n]) => `fedsynth_rejected_messages_total{reason="${label(code)}"} ${n}`),
    );
    metric(
      'fedsynth_secagg_aborts_total',
      'counter',
      'Secure-aggregation rounds a bank refused, by the bank\'s reason code (KEY_LIST_* = a key list it could not verify).',
      [...this.secaggAborts].sort(([a], [b]) => a.localeCompare(b)).map(([code, n]) => `fedsynth_secagg_aborts_total{code="${label(code)}"} ${n}`),
    );
    metric('fedsynth_round_duration_seconds', 'histogram', 'Wall time of a committed round, from round start to durable commit.', this.roundDuration.samples('fedsynth_round_duration_seconds'));
    metric('fedsynth_round_commit_seconds', 'histogram', 'Time to aggregate and durably commit a round.', this.commitDuration.samples('fedsynth_round_commit_seconds'));
    metric('process_cpu_seconds_total', 'counter', 'User and system CPU time of the coordinator process.', [`process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`]);
    metric('process_resident_memory_bytes', 'gauge', 'Resident memory of the coordinator process.', [`process_resident_memory_bytes ${mem.rss}`]);
    metric('process_start_time_seconds', 'gauge', 'Start time of the coordinator process (Unix seconds).', [`process_start_time_seconds ${Math.floor(this.started / 1000)}`]);
    return lines.join('\n') + '\n';
  }
}
