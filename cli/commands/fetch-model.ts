import type { Command } from 'commander';
import { keyFingerprint } from '../../protocol';
import { readCoordinatorKey } from '../../client-node/coordinator-key';
import { verifyBody, type ModelCard, type SignedKind } from '../../coordinator/sampling-service';
import { decodeCheckpoint } from '../../coordinator/store/checkpoint';
import { writeFileAtomic } from '../../shared/fs/atomic-write';

export function register(program: Command): void {
  program
    .command('fetch-model')
    .description("download a global model from the coordinator, verify the coordinator's signature against the pinned key, and write it with its model card")
    .requiredOption('--coordinator <url>', 'coordinator URL, e.g. http://coordinator.consortium:7600')
    .requiredOption('--coordinator-key <file|base64>', "the coordinator's public key to pin: its public identity JSON (<state-dir>/coordinator-public.json), or the base64 Ed25519 key (inline or in a file)")
    .requiredOption('--out <file>', 'checkpoint to write; the model card goes beside it as <file>.model-card.json')
    .option('--model-version <n>', 'model version to fetch (default: the latest)', 'latest')
    .action(async (o: { coordinator: string; coordinatorKey: string; out: string; modelVersion: string }) => {
      const r = await fetchModel({ coordinatorUrl: o.coordinator, coordinatorKey: readCoordinatorKey(o.coordinatorKey), out: o.out, version: o.modelVersion });
      process.stderr.write(`model v${r.card.modelVersion} (round ${r.card.round}, ${r.card.rounds} rounds, ${r.card.banks.length} banks) verified: signed by ${r.fingerprint}\n`);
      process.stdout.write(`${o.out}\n`);
    });
}

export class ModelVerificationError extends Error {
  override name = 'ModelVerificationError';
}

export { readCoordinatorKey };

async function get(url: URL): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new Error(`cannot reach the coordinator at ${url.origin}: ${String((err as Error).cause ?? (err as Error).message)}`);
  }
  if (!res.ok) {
    const detail = await res.text().catch(() => '');
    let msg = detail;
    try {
      msg = (JSON.parse(detail) as { error?: string }).error ?? detail;
    } catch {
      /* not JSON */
    }
    throw new Error(`GET ${url.pathname} answered ${res.status} ${res.statusText}${msg ? `: ${msg.trim().slice(0, 300)}` : ''}`);
  }
  return res;
}

function checkSigned(kind: SignedKind, what: string, res: Response, body: Uint8Array, key: Uint8Array): void {
  const signature = res.headers.get('x-fedsynth-signature');
  if (!signature) throw new ModelVerificationError(`the coordinator sent the ${what} without a signature (x-fedsynth-signature); refusing it`);
  if (!verifyBody(kind, body, signature, key)) {
    const claimed = res.headers.get('x-fedsynth-coordinator-fingerprint');
    throw new ModelVerificationError(
      `the ${what}'s signature does not verify against the pinned coordinator key (${keyFingerprint(key)})` +
        `${claimed ? `; the server claims to be ${claimed}` : ''}: the file was altered or comes from another coordinator. Nothing was written.`,
    );
  }
}

/** Downloads, verifies (signatures, card ↔ checkpoint binding, checkpoint format) and writes a model and its card. */
export async function fetchModel(o: { coordinatorUrl: string; coordinatorKey: Uint8Array; out: string; version?: string }): Promise<{ card: ModelCard; sha256: string; fingerprint: string }> {
  const version = o.version ?? 'latest';
  if (version !== 'latest' && !/^\d+$/.test(version)) throw new Error(`--model-version must be a non-negative integer or 'latest', got '${version}'`);
  const base = new URL(o.coordinatorUrl);
  const modelRes = await get(new URL(`/models/${version}`, base));
  const bytes = new Uint8Array(await modelRes.arrayBuffer());
  checkSigned('model', 'model', modelRes, bytes, o.coordinatorKey);
  const served = modelRes.headers.get('x-fedsynth-model-version');
  // Fetch the card of exactly the version we got (the latest may move on in between).
  const cardRes = await get(new URL(`/models/${served ?? version}/card`, base));
  const cardBytes = new Uint8Array(await cardRes.arrayBuffer());
  checkSigned('model-card', 'model card', cardRes, cardBytes, o.coordinatorKey);
  const card = JSON.parse(Buffer.from(cardBytes).toString('utf8')) as ModelCard;
  const { createHash } = await import('node:crypto');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (card.checkpointSha256 !== sha256) throw new ModelVerificationError(`the model card describes checkpoint ${card.checkpointSha256.slice(0, 16)}…, the downloaded checkpoint is ${sha256.slice(0, 16)}…; refusing them`);
  const ckpt = decodeCheckpoint(Buffer.from(bytes), 'the downloaded checkpoint');
  if (ckpt.version !== card.modelVersion) throw new ModelVerificationError(`the checkpoint is version ${ckpt.version}, its card says ${card.modelVersion}`);
  writeFileAtomic(o.out, bytes);
  writeFileAtomic(`${o.out}.model-card.json`, JSON.stringify({ ...card, fetchedFrom: base.origin, fetchedAt: new Date().toISOString() }, null, 2) + '\n');
  return { card, sha256, fingerprint: keyFingerprint(o.coordinatorKey) };
}
