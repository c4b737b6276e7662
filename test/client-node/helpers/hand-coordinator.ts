// A coordinator driven by hand from a test: a real socket.io server speaking the real protocol
// (CoordinatorWire, signed frames) to one bank, so a test can send any frame at any time and wait
// for the agent's answers.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { CoordinatorWire } from '../../../coordinator/wire';
import { generateIdentity, type DecodedMessage, type Identity } from '../../../protocol';
import type { NamedTensor } from '../../../shared/tensor/named';

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
