// The coordinator's per-round secure-aggregation driver without sockets: step timeouts drop silent
// banks, falling below the threshold aborts the round (the RoundManager then retries it).
import { describe, expect, it } from 'vitest';
import { SecAggRound } from '../../coordinator/secagg-round';
import { SecAggClient } from '../../shared/secagg';
import { memoryLogger } from '../../shared/log/logger';

function driver(cohort: string[], stepTimeoutMs: number) {
  const sent: { kind: string; to: string; m: any }[] = [];
  const dropped: string[] = [];
  const aborted: string[] = [];
  const round = new SecAggRound({
    roundId: 5,
    cohort,
    layout: [{ name: 'w', shape: [4] }],
    clipNorm: 1,
    settings: { stepTimeoutMs },
    send: {
      keyList: (to, m) => sent.push({ kind: 'keyList', to, m }),
      forwardedShares: (to, m) => sent.push({ kind: 'forwarded', to, m }),
      unmaskRequest: (to, m) => sent.push({ kind: 'unmask', to, m }),
    },
    drop: (id) => dropped.push(id),
    abort: (reason) => aborted.push(reason),
    log: memoryLogger('t'),
  });
  return { round, sent, dropped, aborted };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SecAggRound', () => {
  it('drops a bank that misses the key step, then aborts when too few banks share keys', async () => {
    const start = Date.now();
    const { round, sent, dropped, aborted } = driver(['a', 'b', 'c'], 200);
    expect(round.params).toMatchObject({ threshold: 2, cohort: ['a', 'b', 'c'], vectorLength: 4, maxBanks: 3 });
    const clients = ['a', 'b'].map((id) => new SecAggClient({ id, roundId: 5, threshold: 2, vectorLength: 4 }));
    for (const c of clients) {
      const adv = c.advertise();
      expect(round.receiveAdvertise(c.id, adv)).toBeNull();
    }
    expect(round.receiveAdvertise('z', { roundId: 5, cPk: new Uint8Array(32), sPk: new Uint8Array(32) })).toMatchObject({ code: 'UNEXPECTED_MESSAGE' });
    await sleep(start + 300 - Date.now()); // the key step times out at 200 ms, the share step at ≥ 400 ms
    expect(Date.now() - start).toBeLessThan(390);
    expect(dropped).toEqual(['c']);
    expect(sent.filter((s) => s.kind === 'keyList').map((s) => s.to)).toEqual(['a', 'b']);
    // Only 'a' shares; 'b' stays silent past the step timeout: U2 = 1 < t = 2.
    const list = sent[0]!.m;
    const shares = clients[0]!.shareKeys({ type: 'secaggKeyList', roundId: 5, keys: list.keys.map((k: any) => ({ id: k.bankId, cPk: k.cPk, sPk: k.sPk })) });
    expect(round.receiveShares('a', { roundId: 5, ciphertexts: shares.ciphertexts.map((c) => ({ bankId: c.to, data: c.data })) })).toBeNull();
    expect(round.receiveShares('a', { roundId: 6, ciphertexts: [] })).toMatchObject({ code: 'STALE_ROUND' });
    await sleep(start + 550 - Date.now());
    expect(dropped).toEqual(['c', 'b']);
    expect(aborted.length).toBe(1);
    expect(aborted[0]).toMatch(/BELOW|threshold|only 1/i);
    round.close();
  });

  it('closes a step early once every expected bank answered or left', () => {
    const { round, sent } = driver(['a', 'b', 'c'], 60_000);
    for (const id of ['a', 'b']) {
      const c = new SecAggClient({ id, roundId: 5, threshold: 2, vectorLength: 4 });
      round.receiveAdvertise(id, c.advertise());
    }
    expect(sent.length).toBe(0);
    round.bankGone('c');
    expect(sent.map((s) => s.to)).toEqual(['a', 'b']);
    expect(round.currentStep).toBe('shares');
    round.close();
  });
});
