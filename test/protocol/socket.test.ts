// The frame event over a real socket.io connection: Node delivers a Buffer, the codec decodes it,
// and the recommended maxHttpBufferSize lets a frame at the codec's cap through so the codec's
// specific OVERSIZE error (not a silent socket.io disconnect) is what a peer sees.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import {
  decodeFrame,
  encodeFrame,
  FRAME_EVENT,
  generateIdentity,
  ProtocolError,
  recommendedMaxHttpBufferSize,
  ReplayGuard,
  type ClientToServerEvents,
  type ClientUpdateMessage,
  type ServerToClientEvents,
} from '../../protocol/index';
import { tensor } from './helpers';

const CAP = 4 * 1024 * 1024;
const bank = generateIdentity('bank-a');
const coord = generateIdentity('coordinator');
let server: Server<ClientToServerEvents, ServerToClientEvents>;
let client: ClientSocket<ServerToClientEvents, ClientToServerEvents>;
let url = '';

beforeAll(async () => {
  const http = createServer();
  server = new Server<ClientToServerEvents, ServerToClientEvents>(http, { maxHttpBufferSize: recommendedMaxHttpBufferSize(CAP), serveClient: false });
  const guard = new ReplayGuard();
  server.on('connection', (socket) => {
    socket.on(FRAME_EVENT, (bytes) => {
      let reply: Uint8Array;
      try {
        const msg = decodeFrame(bytes, { maxFrameBytes: CAP, guard, verify: (s) => (s === 'bank-a' ? bank.sign.publicKey : undefined) });
        if (msg.type !== 'clientUpdate') throw new Error('unexpected');
        const sum = msg.tensors[0].data.reduce((a, b) => a + b, 0);
        reply = encodeFrame({ type: 'roundResult', roundId: msg.roundId, modelVersion: msg.modelVersion + 1, banksAggregated: 1, status: 'committed', message: `sum=${sum.toFixed(3)}` }, { signer: { id: 'coordinator', secretKey: coord.sign.secretKey } });
      } catch (err) {
        const code = err instanceof ProtocolError ? err.code : 'INTERNAL';
        reply = encodeFrame({ type: 'error', code: code as 'INTERNAL', message: (err as Error).message.slice(0, 200), roundId: 0 }, { signer: { id: 'coordinator', secretKey: coord.sign.secretKey } });
      }
      socket.emit(FRAME_EVENT, reply);
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  client = connect(url, { transports: ['websocket'], reconnection: false });
  await new Promise<void>((r, j) => {
    client.once('connect', () => r());
    client.once('connect_error', j);
  });
});

afterAll(async () => {
  client?.close();
  await new Promise<void>((r) => server.close(() => r()));
});

function exchange(bytes: Uint8Array) {
  return new Promise<ReturnType<typeof decodeFrame>>((resolve, reject) => {
    client.once(FRAME_EVENT, (reply) => {
      try {
        resolve(decodeFrame(reply, { verify: (s) => (s === 'coordinator' ? coord.sign.publicKey : undefined) }));
      } catch (e) {
        reject(e);
      }
    });
    client.emit(FRAME_EVENT, bytes);
  });
}

const update = (n: number): ClientUpdateMessage => ({
  type: 'clientUpdate', roundId: 1, modelVersion: 0, sampleCount: 10, tensors: [tensor('w', [n], 5)], metrics: {}, epsilonSpent: 1, delta: 1e-5,
});

describe('frames over socket.io', () => {
  it('carries a signed update and a signed reply', async () => {
    const msg = update(600_000);
    const expected = msg.tensors[0].data.reduce((a, b) => a + b, 0);
    const reply = await exchange(encodeFrame(msg, { signer: { id: 'bank-a', secretKey: bank.sign.secretKey }, maxFrameBytes: CAP }));
    expect(reply.type).toBe('roundResult');
    expect(reply.frame.verified).toBe('key');
    if (reply.type === 'roundResult') expect(reply.message).toBe(`sum=${expected.toFixed(3)}`);
  });

  it('a frame over the codec cap reaches the codec and is refused as OVERSIZE', async () => {
    const bytes = encodeFrame(update(CAP / 4 + 1000), { signer: { id: 'bank-a', secretKey: bank.sign.secretKey }, maxFrameBytes: 2 * CAP });
    expect(bytes.length).toBeGreaterThan(CAP);
    const reply = await exchange(bytes);
    expect(reply.type).toBe('error');
    if (reply.type === 'error') expect(reply.code).toBe('OVERSIZE');
  });

  it('a replayed frame is refused', async () => {
    const bytes = encodeFrame(update(10), { signer: { id: 'bank-a', secretKey: bank.sign.secretKey } });
    expect((await exchange(bytes)).type).toBe('roundResult');
    const again = await exchange(bytes);
    expect(again.type === 'error' && again.code).toBe('REPLAY');
  });
});
