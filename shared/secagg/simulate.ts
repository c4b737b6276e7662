// In-process simulation of one secure-aggregation round (no sockets): n SecAggClients and one
// SecAggServer exchanging deep-copied messages, with scripted dropouts. Used by the tests and by
// bench/secagg.ts; it is also the reference for how a transport must drive the state machines.
import nacl from 'tweetnacl';
import { cloneMessage, wireSize, type SecAggMessage } from './messages';
import { defaultThreshold, SecAggClient, SecAggServer, type SecAggResult } from './protocol';

export interface SimulationOptions {
  /** Bank ids (any order). */
  ids: readonly string[];
  /** Ring input of each bank (called once, when the bank masks; lets callers stream big inputs). */
  input: (id: string) => Uint32Array;
  vectorLength: number;
  roundId?: number;
  /** Default defaultThreshold(ids.length). */
  threshold?: number;
  /** Advertise keys, then vanish before sharing them (U1 \ U2). */
  dropBeforeShares?: readonly string[];
  /** Share keys, then vanish before sending the masked input (U2 \ U3): the server must rebuild their s_sk. */
  dropBeforeInput?: readonly string[];
  /** Send the masked input, then vanish during unmasking (U3 \ U4): their input still counts. */
  dropBeforeUnmask?: readonly string[];
  /** Copy every message as a transport would (default true). */
  clone?: boolean;
  /**
   * Signed adverts verified against a consortium directory, as deployed (default true): every bank
   * gets a fresh Ed25519 identity, signs its keys and checks every key-list entry (+64 bytes per entry).
   */
  verifyKeys?: boolean;
}

export interface PartyCost {
  /** CPU milliseconds (user + system) spent inside the party's protocol methods. */
  cpuMs: number;
  /** Estimated protobuf bytes sent / received. */
  sentBytes: number;
  receivedBytes: number;
}

export interface SimulationReport {
  result: SecAggResult;
  clients: Map<string, PartyCost>;
  server: PartyCost;
}

function cpu<T>(cost: PartyCost, f: () => T): T {
  const t0 = process.cpuUsage();
  try {
    return f();
  } finally {
    const d = process.cpuUsage(t0);
    cost.cpuMs += (d.user + d.system) / 1000;
  }
}

export function simulateRound(o: SimulationOptions): SimulationReport {
  const roundId = o.roundId ?? 1;
  const threshold = o.threshold ?? defaultThreshold(o.ids.length);
  const clone = o.clone ?? true;
  const gone = new Set<string>();
  const send = <M extends SecAggMessage>(m: M, from: PartyCost, to: PartyCost): M => {
    const size = wireSize(m);
    from.sentBytes += size;
    to.receivedBytes += size;
    return clone ? cloneMessage(m) : m;
  };
  const server = new SecAggServer({ roundId, threshold, vectorLength: o.vectorLength, allowed: o.ids });
  const serverCost: PartyCost = { cpuMs: 0, sentBytes: 0, receivedBytes: 0 };
  const clients = new Map<string, SecAggClient>();
  const costs = new Map<string, PartyCost>();
  const identities = new Map((o.verifyKeys ?? true ? o.ids : []).map((id) => [id, nacl.sign.keyPair()]));
  const directory = identities.size ? new Map([...identities].map(([id, kp]) => [id, kp.publicKey])) : undefined;
  for (const id of o.ids) {
    const pki = directory ? { signingKey: identities.get(id)!.secretKey, directory } : {};
    clients.set(id, new SecAggClient({ id, roundId, threshold, vectorLength: o.vectorLength, ...pki }));
    costs.set(id, { cpuMs: 0, sentBytes: 0, receivedBytes: 0 });
  }
  const live = () => o.ids.filter((id) => !gone.has(id));

  for (const id of live()) {
    const m = cpu(costs.get(id)!, () => clients.get(id)!.advertise());
    const msg = send(m, costs.get(id)!, serverCost);
    cpu(serverCost, () => server.receiveAdvertise(msg));
  }
  const list = cpu(serverCost, () => server.keyList());
  for (const id of o.dropBeforeShares ?? []) gone.add(id);
  for (const id of live()) {
    const l = send(list, serverCost, costs.get(id)!);
    const m = cpu(costs.get(id)!, () => clients.get(id)!.shareKeys(l));
    const msg = send(m, costs.get(id)!, serverCost);
    cpu(serverCost, () => server.receiveShares(msg));
  }
  const forwarded = cpu(serverCost, () => server.forwardShares());
  for (const id of o.dropBeforeInput ?? []) gone.add(id);
  for (const id of live()) {
    const f = send(forwarded.get(id)!, serverCost, costs.get(id)!);
    const input = o.input(id);
    const m = cpu(costs.get(id)!, () => clients.get(id)!.maskInput(f, input));
    const msg = send(m, costs.get(id)!, serverCost);
    cpu(serverCost, () => server.receiveMaskedInput(msg));
  }
  const request = cpu(serverCost, () => server.unmaskRequest());
  for (const id of o.dropBeforeUnmask ?? []) gone.add(id);
  for (const id of live()) {
    const r = send(request, serverCost, costs.get(id)!);
    const m = cpu(costs.get(id)!, () => clients.get(id)!.unmask(r));
    const msg = send(m, costs.get(id)!, serverCost);
    cpu(serverCost, () => server.receiveUnmask(msg));
  }
  const result = cpu(serverCost, () => server.finish());
  return { result, clients: costs, server: serverCost };
}
