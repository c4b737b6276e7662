// A loopback TCP proxy that records every byte passing in each direction. Integration tests put it
// between a bank agent and the coordinator to inspect exactly what leaves the bank on the wire, and
// cut it to simulate a network failure.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface RecordingProxy {
  port: number;
  /** Everything the client side sent (bank -> coordinator), concatenated. */
  upstreamBytes(): Buffer;
  downstreamBytes(): Buffer;
  /** Destroys all live connections (the client will see a network failure and reconnect). */
  cut(): void;
  close(): Promise<void>;
}

export async function startRecordingProxy(targetPort: number, host = '127.0.0.1'): Promise<RecordingProxy> {
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const live = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, host);
    live.add(client);
    live.add(upstream);
    client.on('data', (d) => {
      up.push(Buffer.from(d));
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      down.push(Buffer.from(d));
      client.write(d);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    upstreamBytes: () => Buffer.concat(up),
    downstreamBytes: () => Buffer.concat(down),
    cut: () => {
      for (const s of live) s.destroy();
      live.clear();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of live) s.destroy();
        server.close(() => r());
      }),
  };
}
