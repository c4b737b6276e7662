// The coordinator's signing key a bank pins, as the operator hands it out: the coordinator's public
// identity JSON (<state-dir>/coordinator-public.json), a file holding the base64 Ed25519 key, or
// the key inline. Used by the agent (--coordinator-key) and fetch-model.
import { existsSync, readFileSync } from 'node:fs';
import { parsePublicIdentity } from '../protocol';

export function readCoordinatorKey(arg: string, flag = '--coordinator-key'): Uint8Array {
  const text = existsSync(arg) ? readFileSync(arg, 'utf8').trim() : arg.trim();
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new Error(`${flag} ${arg} is not valid JSON: ${(err as Error).message}`);
    }
    return parsePublicIdentity(parsed, `${flag} ${arg}`).signPublicKey;
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32) throw new Error(`${flag} must be a public identity JSON file or a base64 Ed25519 public key (32 bytes), got ${key.length} bytes`);
  return new Uint8Array(key);
}
