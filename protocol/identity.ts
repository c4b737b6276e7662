// Long-lived identities of banks and the coordinator: an Ed25519 signing pair (frame signatures)
// and an X25519 box pair (key agreement for secure aggregation). Secret keys live only in a 0600
// JSON file on the owner's machine; allow-lists carry the public half.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import nacl from 'tweetnacl';
import { ProtocolError } from './errors';

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export interface Identity {
  /** Optional bank or coordinator id this identity belongs to. */
  id?: string;
  /** Ed25519: secretKey 64 bytes, publicKey 32 bytes. */
  sign: KeyPair;
  /** X25519: both 32 bytes. */
  box: KeyPair;
}

export interface PublicIdentity {
  id?: string;
  /** base64 Ed25519 public key */
  signPublicKey: string;
  /** base64 X25519 public key */
  boxPublicKey: string;
  fingerprint: string;
}

const FILE_KIND = 'fedsynth-identity';
const FILE_VERSION = 1;
const ID_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

export function generateIdentity(id?: string): Identity {
  if (id !== undefined && !ID_PATTERN.test(id)) {
    throw new ProtocolError('INVALID_FIELD', `identity id '${id}' must match ${ID_PATTERN} (lower-case letters, digits, '_', '.', '-'; at most 64 characters)`);
  }
  const sign = nacl.sign.keyPair();
  const box = nacl.box.keyPair();
  return { ...(id !== undefined ? { id } : {}), sign, box };
}

/**
 * Stable, human-comparable fingerprint of a signing public key: the first 16 bytes of
 * SHA-256("fedsynth-key-fingerprint/v1" ‖ key) as colon-separated hex groups. Operators compare it
 * out of band before adding a bank to the allow-list.
 */
export function keyFingerprint(signPublicKey: Uint8Array): string {
  if (!(signPublicKey instanceof Uint8Array) || signPublicKey.length !== nacl.sign.publicKeyLength) {
    throw new ProtocolError('INVALID_FIELD', `a fingerprint needs a ${nacl.sign.publicKeyLength}-byte Ed25519 public key`);
  }
  const hex = createHash('sha256').update('fedsynth-key-fingerprint/v1').update(signPublicKey).digest('hex').slice(0, 32);
  return hex.match(/.{4}/g)!.join(':');
}

export function publicIdentity(identity: Identity): PublicIdentity {
  return {
    ...(identity.id !== undefined ? { id: identity.id } : {}),
    signPublicKey: b64(identity.sign.publicKey),
    boxPublicKey: b64(identity.box.publicKey),
    fingerprint: keyFingerprint(identity.sign.publicKey),
  };
}

/** Parses a PublicIdentity (e.g. an allow-list entry) back into raw keys, checking lengths and the fingerprint if present. */
export function parsePublicIdentity(value: unknown, where = 'public identity'): { id?: string; signPublicKey: Uint8Array; boxPublicKey: Uint8Array; fingerprint: string } {
  if (typeof value !== 'object' || value === null) throw new ProtocolError('INVALID_FIELD', `${where} must be an object`);
  const v = value as Record<string, unknown>;
  const signPublicKey = decodeKey(v.signPublicKey, 32, `${where}.signPublicKey`, 'INVALID_FIELD');
  const boxPublicKey = decodeKey(v.boxPublicKey, 32, `${where}.boxPublicKey`, 'INVALID_FIELD');
  const fingerprint = keyFingerprint(signPublicKey);
  if (v.fingerprint !== undefined && v.fingerprint !== fingerprint) {
    throw new ProtocolError('INVALID_FIELD', `${where}.fingerprint ${String(v.fingerprint)} does not match its signing key (${fingerprint})`);
  }
  if (v.id !== undefined && (typeof v.id !== 'string' || !ID_PATTERN.test(v.id))) {
    throw new ProtocolError('INVALID_FIELD', `${where}.id must match ${ID_PATTERN}`);
  }
  return { ...(typeof v.id === 'string' ? { id: v.id } : {}), signPublicKey, boxPublicKey, fingerprint };
}

/**
 * Writes the identity as JSON, created with mode 0600 and renamed into place atomically. Refuses to
 * replace an existing file unless `overwrite` is set, since losing a key locks a bank out.
 */
export function saveIdentity(path: string, identity: Identity, opts: { overwrite?: boolean } = {}): void {
  checkIdentity(identity, 'identity');
  if (!opts.overwrite && existsSync(path)) {
    throw new ProtocolError('INVALID_KEY_FILE', `refusing to overwrite the existing key file ${path} (pass overwrite to replace it)`);
  }
  const json = JSON.stringify(
    {
      kind: FILE_KIND,
      version: FILE_VERSION,
      ...(identity.id !== undefined ? { id: identity.id } : {}),
      fingerprint: keyFingerprint(identity.sign.publicKey),
      signPublicKey: b64(identity.sign.publicKey),
      signSecretKey: b64(identity.sign.secretKey),
      boxPublicKey: b64(identity.box.publicKey),
      boxSecretKey: b64(identity.box.secretKey),
    },
    null,
    2,
  );
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  // 'wx' + 0600: the secret never exists on disk with wider permissions, not even briefly.
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, json + '\n');
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

export function loadIdentity(path: string): Identity {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new ProtocolError('INVALID_KEY_FILE', `cannot read key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new ProtocolError(
      'INSECURE_KEY_FILE',
      `key file ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(3, '0')}); run \`chmod 600 ${path}\` and check who may have copied it`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ProtocolError('INVALID_KEY_FILE', `key file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new ProtocolError('INVALID_KEY_FILE', `key file ${path} must hold a JSON object`);
  const f = parsed as Record<string, unknown>;
  if (f.kind !== FILE_KIND) throw new ProtocolError('INVALID_KEY_FILE', `key file ${path} is not a fedsynth identity (kind ${JSON.stringify(f.kind)})`);
  if (f.version !== FILE_VERSION) throw new ProtocolError('INVALID_KEY_FILE', `key file ${path} has unsupported version ${JSON.stringify(f.version)} (expected ${FILE_VERSION})`);
  if (f.id !== undefined && (typeof f.id !== 'string' || !ID_PATTERN.test(f.id))) {
    throw new ProtocolError('INVALID_KEY_FILE', `key file ${path}: id must match ${ID_PATTERN}`);
  }
  const identity: Identity = {
    ...(typeof f.id === 'string' ? { id: f.id } : {}),
    sign: {
      publicKey: decodeKey(f.signPublicKey, 32, `${path}: signPublicKey`, 'INVALID_KEY_FILE'),
      secretKey: decodeKey(f.signSecretKey, 64, `${path}: signSecretKey`, 'INVALID_KEY_FILE'),
    },
    box: {
      publicKey: decodeKey(f.boxPublicKey, 32, `${path}: boxPublicKey`, 'INVALID_KEY_FILE'),
      secretKey: decodeKey(f.boxSecretKey, 32, `${path}: boxSecretKey`, 'INVALID_KEY_FILE'),
    },
  };
  checkIdentity(identity, `key file ${path}`, 'INVALID_KEY_FILE');
  return identity;
}

/** The public halves must be derived from the secret halves; catches hand-edited or mixed-up files. */
function checkIdentity(identity: Identity, where: string, code: 'INVALID_FIELD' | 'INVALID_KEY_FILE' = 'INVALID_FIELD'): void {
  const { sign, box } = identity;
  if (sign?.secretKey?.length !== 64 || sign.publicKey?.length !== 32 || box?.secretKey?.length !== 32 || box.publicKey?.length !== 32) {
    throw new ProtocolError(code, `${where}: keys have wrong lengths (Ed25519 secret 64 / public 32, X25519 secret 32 / public 32 bytes)`);
  }
  const derivedSign = nacl.sign.keyPair.fromSecretKey(sign.secretKey).publicKey;
  if (!nacl.verify(derivedSign, sign.publicKey)) throw new ProtocolError(code, `${where}: signPublicKey does not belong to signSecretKey`);
  const derivedBox = nacl.scalarMult.base(box.secretKey);
  if (!nacl.verify(derivedBox, box.publicKey)) throw new ProtocolError(code, `${where}: boxPublicKey does not belong to boxSecretKey`);
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function decodeKey(value: unknown, length: number, where: string, code: 'INVALID_FIELD' | 'INVALID_KEY_FILE'): Uint8Array {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new ProtocolError(code, `${where} must be a base64 string`);
  const bytes = new Uint8Array(Buffer.from(value, 'base64'));
  if (bytes.length !== length) throw new ProtocolError(code, `${where} must decode to ${length} bytes (got ${bytes.length})`);
  return bytes;
}
