// Nix's binary-cache keys (src/libutil/signature/local-keys.cc): `name:base64`,
// the secret being the 32-byte ed25519 seed followed by the 32-byte public key.
// node:crypto does ed25519 once the raw bytes are wrapped in PKCS#8/SPKI DER.

import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { formatSignature, parseSignature, splitNamedValue } from './signature.ts';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const KEY_BYTES = 32;

export interface PublicKey {
  readonly name: string;
  /** The raw 32-byte ed25519 public key. */
  readonly bytes: Buffer;
  readonly keyObject: KeyObject;
}

export interface SecretKey {
  readonly name: string;
  /** The raw 32-byte ed25519 seed. */
  readonly seed: Buffer;
  readonly keyObject: KeyObject;
  readonly publicKey: PublicKey;
}

function checkName(name: string): void {
  if (name === '' || name.includes(':') || /\s/.test(name)) {
    throw new Error(`key name '${name}' must be non-empty, without ':' or white space`);
  }
}

function publicKeyFromBytes(name: string, bytes: Buffer): PublicKey {
  const keyObject = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, bytes]), format: 'der', type: 'spki' });
  return { name, bytes, keyObject };
}

function secretKeyFromSeed(name: string, seed: Buffer): SecretKey {
  checkName(name);
  const keyObject = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(keyObject).export({ format: 'der', type: 'spki' });
  return { name, seed, keyObject, publicKey: publicKeyFromBytes(name, spki.subarray(SPKI_ED25519_PREFIX.length)) };
}

/** A fresh key, as `nix-store --generate-binary-cache-key` makes. */
export function generateSecretKey(name: string): SecretKey {
  return secretKeyFromSeed(name, randomBytes(KEY_BYTES));
}

/**
 * Parsed keys by their text: the server signs every upload with keys it reads from the index,
 * and deriving the key objects cost more than the signature. A server holds a handful of keys.
 */
const parsedSecretKeys = new Map<string, SecretKey>();
const PARSED_KEYS_KEPT = 64;

export function parseSecretKey(text: string): SecretKey {
  let key = parsedSecretKeys.get(text);
  if (!key) {
    key = parseSecretKeyText(text);
    if (parsedSecretKeys.size >= PARSED_KEYS_KEPT) parsedSecretKeys.clear();
    parsedSecretKeys.set(text, key);
  }
  return key;
}

function parseSecretKeyText(text: string): SecretKey {
  const { name, bytes } = splitNamedValue(text.trim(), 'secret key');
  if (bytes.length !== 2 * KEY_BYTES) {
    throw new Error(`secret key '${name}' holds ${bytes.length} bytes; expected ${2 * KEY_BYTES} (seed and public key)`);
  }
  const key = secretKeyFromSeed(name, bytes.subarray(0, KEY_BYTES));
  if (!key.publicKey.bytes.equals(bytes.subarray(KEY_BYTES))) {
    throw new Error(`secret key '${name}' is corrupt: its public half does not match its seed`);
  }
  return key;
}

export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = splitNamedValue(text.trim(), 'public key');
  checkName(name);
  if (bytes.length !== KEY_BYTES) throw new Error(`public key '${name}' holds ${bytes.length} bytes; expected ${KEY_BYTES}`);
  return publicKeyFromBytes(name, bytes);
}

export function formatSecretKey(key: SecretKey): string {
  return `${key.name}:${Buffer.concat([key.seed, key.publicKey.bytes]).toString('base64')}`;
}

export function formatPublicKey(key: PublicKey): string {
  return `${key.name}:${key.bytes.toString('base64')}`;
}

/** Signs `message` and returns a `Sig` value `name:base64`. */
export function signMessage(key: SecretKey, message: string): string {
  return formatSignature({ keyName: key.name, bytes: sign(null, Buffer.from(message), key.keyObject) });
}

/**
 * Checks a `Sig` value against the trusted keys, by name, as Nix does: a
 * signature by an unknown key name is not valid (and not an error).
 */
export function verifySignature(sig: string, message: string, trusted: ReadonlyMap<string, PublicKey>): boolean {
  const signature = parseSignature(sig);
  const key = trusted.get(signature.keyName);
  return key !== undefined && verify(null, Buffer.from(message), key.keyObject, signature.bytes);
}

/** Trusted keys by name; the first of a name wins, as in Nix. */
export function trustedKeyMap(keys: Iterable<PublicKey>): Map<string, PublicKey> {
  const map = new Map<string, PublicKey>();
  for (const key of keys) if (!map.has(key.name)) map.set(key.name, key);
  return map;
}
