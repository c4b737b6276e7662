// A coordinator driven by hand from a test: a real socket.io server speaking the real protocol
// (CoordinatorWire, signed frames) to one bank, so a test can send any frame at any time and wait
// for the agent's answers.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { CoordinatorWire } from '../../../coordinator/wire';
import { generateIdentity, type DecodedMessage, type Identity } from '../../../protocol';
import type { NamedTensor } from '../../../shared/tensor/named';
import { startAgent, type AgentOptions, type RunningAgent } from '../../../client-node/agent';
import type { PrivacyLedger } from '../../../client-node/ledger';
import type { LocalTrainer } from '../../../client-node/trainer';
import type { Logger } from '../../../shared/log/logger';

export interface HandCoordinator {
  url: string;
  identity: Identity;
  wire: CoordinatorWire;
  /** The next frame of this type from the agent (already received or still to come). */
  next(type: string): Promise<DecodedMessage>;
  /** Frames received and not yet taken by next(). */
  received: DecodedMessage[];
  send(bytes: Uint8Array): void;
  close(): void;
}

export async function handCoordinator(bank: Identity, modelWeights: readonly NamedTensor[]): Promise<HandCoordinator> {
  const identity = generateIdentity('coordinator');
  const wire = new CoordinatorWire({
    identity,
    maxFrameBytes: 8 << 20,
    modelSpec: modelWeights.map((t) => ({ name: t.name, shape: [...t.shape] })),
    schemaHash: 'sha256:toy',
    keyOf: (id) => (id === bank.id ? bank.sign.publicKey : undefined),
    openRegistration: false,
  });
  const http = createServer();
  const io = new Server(http, { serveClient: false, maxHttpBufferSize: 16 << 20 });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const received: DecodedMessage[] = [];
  const waiters: { type: string; resolve: (m: DecodedMessage) => void }[] = [];
  let send: (bytes: Uint8Array) => void = () => {};
  io.on('connection', (socket) => {
    send = (bytes) => socket.emit('frame', bytes);
    socket.on('frame', (payload: Uint8Array) => {
      const d = wire.decode(payload);
      if (!d.ok) throw new Error(`the agent sent a bad frame: ${d.rejection.message}`);
      const w = waiters.findIndex((x) => x.type === d.message.type);
      if (w >= 0) waiters.splice(w, 1)[0]!.resolve(d.message);
      else received.push(d.message);
    });
  });
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    identity,
    wire,
    received,
    next: (type) =>
      new Promise((resolve) => {
        const have = received.find((m) => m.type === type);
        if (have) {
          received.splice(received.indexOf(have), 1);
          resolve(have);
        } else waiters.push({ type, resolve });
      }),
    send: (bytes) => send(bytes),
    close: () => {
      io.close();
      http.close();
    },
  };
}

export async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A real agent (startAgent) for a toy dataset of `rows` × `dim` encoded values, talking to `coordinator`:
 * it pins the coordinator's key unless `coordinatorKey` says otherwise, summarises with fixed counts
 * of the toy's class column, and reports its ledger's ε.
 */
export function startToyAgent(o: {
  coordinator: HandCoordinator;
  bank: Identity;
  ledger: PrivacyLedger;
  trainer: (modelConfigJson: string) => LocalTrainer;
  /** publicRows: the released row count the agent reports (default: rows). */
  data: { encoded: Float32Array; rows: number; dim: number; publicRows?: number };
  log: Logger;
  coordinatorKey?: Uint8Array;
  coordinatorKeySource?: string;
  releaseCalibration?: AgentOptions['releaseCalibration'];
  releasePairCounts?: AgentOptions['releasePairCounts'];
}): RunningAgent {
  const { rows } = o.data;
  return startAgent({
    coordinatorUrl: o.coordinator.url,
    bankId: o.bank.id!,
    schemaHash: 'sha256:toy',
    identity: o.bank,
    coordinatorKey: o.coordinatorKey ?? o.coordinator.identity.sign.publicKey,
    ...(o.coordinatorKeySource ? { coordinatorKeySource: o.coordinatorKeySource } : {}),
    createTrainer: async (json) => o.trainer(json),
    dataset: { prepare: () => ({ publicRows: rows, ...o.data }) },
    summarize: () => ({ counts: [{ column: 'c', values: [rows / 2, (rows * 3) / 10, rows / 5] }], epsilon: 0.1, delta: 1e-5, noiseStd: 10 }),
    epsilonSpent: () => ({ epsilon: o.ledger.spent(1e-5), delta: 1e-5 }),
    ...(o.releaseCalibration ? { releaseCalibration: o.releaseCalibration } : {}),
    ...(o.releasePairCounts ? { releasePairCounts: o.releasePairCounts } : {}),
    unverifiedKeyLists: true,
    log: o.log,
  });
}

/** How the agent ended: undefined (finished), its error, or a string when it still runs after `ms`. */
export function agentOutcome(agent: RunningAgent, ms: number): Promise<unknown> {
  return Promise.race([agent.done.then(() => undefined, (e: unknown) => e), new Promise((r) => setTimeout(() => r(`still running after ${ms / 1000} s`), ms))]);
}
