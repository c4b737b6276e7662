// Coordinator counters and a Prometheus text exposition (version 0.0.4), without a client library.
import type { RoundSnapshot } from './rounds';

const BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];

export class Metrics {
  connections = 0;
  bytesReceived = 0;
  bytesSent = 0;
  roundsCommitted = 0;
  roundsFailed = 0;
  readonly rejected = new Map<string, number>();
  private readonly roundBuckets = new Array<number>(BUCKETS.length).fill(0);
  private roundCount = 0;
  private roundSum = 0;

  reject(code: string): void {
    this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
  }

  observeRound(seconds: number): void {
    this.roundCount += 1;
    this.roundSum += seconds;
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.roundBuckets[i]! += 1;
    });
  }

  prometheus(banksOnline: number, round: RoundSnapshot): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: string[]): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples);
    };
    metric('fedsynth_banks_online', 'gauge', 'Banks currently connected and registered.', [`fedsynth_banks_online ${banksOnline}`]);
    metric('fedsynth_model_version', 'gauge', 'Latest committed global model version.', [`fedsynth_model_version ${round.modelVersion}`]);
    metric('fedsynth_rounds_committed_total', 'counter', 'Rounds committed by this process.', [`fedsynth_rounds_committed_total ${this.roundsCommitted}`]);
    metric('fedsynth_rounds_failed_total', 'counter', 'Round attempts that failed.', [`fedsynth_rounds_failed_total ${this.roundsFailed}`]);
    metric('fedsynth_bytes_received_total', 'counter', 'Frame bytes received from banks.', [`fedsynth_bytes_received_total ${this.bytesReceived}`]);
    metric('fedsynth_bytes_sent_total', 'counter', 'Frame bytes sent to banks.', [`fedsynth_bytes_sent_total ${this.bytesSent}`]);
    metric(
      'fedsynth_rejected_messages_total',
      'counter',
      'Messages rejected, by reason code.',
      [...this.rejected].map(([code, n]) => `fedsynth_rejected_messages_total{reason="${code}"} ${n}`),
    );
    let cumulative: string[] = BUCKETS.map((b, i) => `fedsynth_round_commit_seconds_bucket{le="${b}"} ${this.roundBuckets[i]}`);
    cumulative = [...cumulative, `fedsynth_round_commit_seconds_bucket{le="+Inf"} ${this.roundCount}`];
    metric('fedsynth_round_commit_seconds', 'histogram', 'Time to aggregate and durably commit a round.', [
      ...cumulative,
      `fedsynth_round_commit_seconds_sum ${this.roundSum}`,
      `fedsynth_round_commit_seconds_count ${this.roundCount}`,
    ]);
    return lines.join('\n') + '\n';
  }
}
