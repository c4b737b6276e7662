import { describe, expect, it } from 'vitest';
import { RoundManager, type CommittedRound, type RoundPolicy } from '../../coordinator/rounds';
import { FedAvg } from '../../coordinator/strategy/fedavg';
import { memoryLogger } from '../../shared/log/logger';

const plan = { localSteps: 1, batchSize: 8, lrGenerator: 1e-3, lrDiscriminator: 1e-3, dSteps: 1, loss: 'ns', updateClipNorm: 0 };
const w = (v: number) => [{ name: 'w', shape: [2], data: Float32Array.from([v, v]) }];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function harness(policy: Partial<RoundPolicy> = {}) {
  const started: { bankId: string; roundId: number }[] = [];
  const results: { bankId: string; status: string; roundId: number }[] = [];
  const commits: CommittedRound[] = [];
  const failures: { roundId: number; reason: string }[] = [];
  let finished = false;
  const rm = new RoundManager(
    new FedAvg(),
    { minClients: 2, maxRounds: 2, deadlineMs: 300, waitForClientsMs: 10, retryLimit: 0, ...policy },
    plan,
    {
      sendRoundStart: (bankId, m) => started.push({ bankId, roundId: m.roundId }),
      sendRoundResult: (bankId, m) => results.push({ bankId, status: m.status, roundId: m.roundId }),
      commit: async (r) => void commits.push(r),
      recordFailure: (roundId, reason) => failures.push({ roundId, reason }),
      onFinished: () => (finished = true),
    },
    memoryLogger(),
    { weights: w(0), modelVersion: 0, nextRoundId: 1, roundsCommitted: 0 },
  );
  const update = (bank: string, v: number, n = 10, round = rm.currentRoundId, version = rm.modelVersion) =>
    rm.acceptUpdate(bank, round, version, { bankId: bank, sampleCount: n, update: w(v), metrics: {} }, 0);
  return { rm, started, results, commits, failures, update, isFinished: () => finished };
}

describe('RoundManager', () => {
  it('waits for minClients, runs rounds, commits FedAvg and stops at maxRounds', async () => {
    const h = harness();
    h.rm.bankConnected('a');
    await sleep(30);
    expect(h.started).toHaveLength(0);
    h.rm.bankConnected('b');
    await sleep(30);
    expect(h.started.map((s) => s.bankId).sort()).toEqual(['a', 'b']);
    expect(h.update('a', 1, 10)).toBeNull();
    expect(h.update('b', 4, 30)).toBeNull();
    await sleep(30);
    expect(h.commits).toHaveLength(1);
    expect(Array.from(h.commits[0]!.weights[0]!.data)).toEqual([3.25, 3.25]);
    expect(h.rm.modelVersion).toBe(1);
    expect(h.results.filter((r) => r.status === 'committed')).toHaveLength(2);
    // round 2 starts on its own and uses version 1
    await sleep(30);
    expect(h.started.filter((s) => s.roundId === 2)).toHaveLength(2);
    expect(h.update('a', 0, 10, 1, 0)?.code).toBe('STALE_ROUND');
    expect(h.update('a', 1)).toBeNull();
    expect(h.update('a', 1)?.code).toBe('DUPLICATE_UPDATE');
    expect(h.update('b', 1)).toBeNull();
    await sleep(30);
    expect(h.commits).toHaveLength(2);
    expect(h.isFinished()).toBe(true);
  });

  it('completes a round without a bank that disconnects mid-round when minClients still hold', async () => {
    const h = harness({ minClients: 2 });
    for (const b of ['a', 'b', 'c']) h.rm.bankConnected(b);
    await sleep(30);
    expect(h.update('a', 1)).toBeNull();
    h.rm.bankDisconnected('c');
    expect(h.update('b', 3)).toBeNull();
    await sleep(30);
    expect(h.commits).toHaveLength(1);
    expect(h.commits[0]!.participants.map((p) => p.bankId).sort()).toEqual(['a', 'b']);
    expect(h.commits[0]!.failures).toEqual([{ bankId: 'c', reason: 'disconnected' }]);
  });

  it('fails and retries the same round id when too few banks remain, without counting it', async () => {
    const h = harness({ minClients: 2 });
    h.rm.bankConnected('a');
    h.rm.bankConnected('b');
    await sleep(30);
    h.rm.bankDisconnected('b');
    await sleep(10);
    expect(h.failures).toEqual([{ roundId: 1, reason: 'too few banks left in the round' }]);
    expect(h.commits).toHaveLength(0);
    h.rm.bankConnected('b');
    await sleep(30);
    expect(h.started.filter((s) => s.roundId === 1)).toHaveLength(4); // the retry reuses round id 1
    expect(h.update('a', 1)).toBeNull();
    expect(h.update('b', 1)).toBeNull();
    await sleep(30);
    expect(h.commits.map((c) => c.roundId)).toEqual([1]);
  });

  it('drops stragglers at the deadline and commits with the rest', async () => {
    const h = harness({ minClients: 2, deadlineMs: 150 });
    for (const b of ['a', 'b', 'c']) h.rm.bankConnected(b);
    await sleep(30);
    h.update('a', 1);
    h.update('b', 1);
    await sleep(250);
    expect(h.commits).toHaveLength(1);
    expect(h.commits[0]!.failures).toEqual([{ bankId: 'c', reason: 'straggler: missed the deadline' }]);
    expect(h.update('c', 1, 10, 1, 0)?.code).toBe('STALE_ROUND');
  });

  it('refuses updates from non-participants and invalid sample counts', async () => {
    const h = harness({ minClients: 2 });
    h.rm.bankConnected('a');
    h.rm.bankConnected('b');
    await sleep(30);
    expect(h.update('zed', 1)?.code).toBe('NOT_PARTICIPANT');
    expect(h.update('a', 1, 0)?.code).toBe('INVALID_FIELD');
    expect(h.update('a', 1, 1.5)?.code).toBe('INVALID_FIELD');
  });

  it('gives up after retryLimit failed attempts', async () => {
    const h = harness({ minClients: 2, retryLimit: 1, deadlineMs: 50 });
    h.rm.bankConnected('a');
    h.rm.bankConnected('b');
    await sleep(120);
    expect(h.failures).toHaveLength(1);
    expect(h.isFinished()).toBe(true);
  });
});
