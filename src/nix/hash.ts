// Hashes in every spelling Nix accepts (src/libutil/hash.cc `Hash::parseAnyPrefixed`):
// `<algo>:<digest>` with the digest encoding told by its length (base16, nix32
// or base64), or SRI `<algo>-<base64>`. Nix writes `sha256:<nix32>`.

import { createHash } from 'node:crypto';
import { decodeNix32, encodeNix32, nix32Length } from './nix32.ts';

export type HashAlgorithm = 'md5' | 'sha1' | 'sha256' | 'sha512';

export const HASH_SIZES: Readonly<Record<HashAlgorithm, number>> = {
  md5: 16,
  sha1: 20,
  sha256: 32,
  sha512: 64,
};

export interface Hash {
  readonly algorithm: HashAlgorithm;
  readonly digest: Buffer;
}

export type HashEncoding = 'nix32' | 'base16' | 'base64' | 'sri';

function isAlgorithm(name: string): name is HashAlgorithm {
  return Object.hasOwn(HASH_SIZES, name);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE16 = /^[0-9a-fA-F]*$/;

/** Decodes a bare digest of a known algorithm, telling the encoding by its length. */
export function parseDigest(algorithm: HashAlgorithm, text: string): Buffer {
  const size = HASH_SIZES[algorithm];
  if (text.length === size * 2) {
    if (!BASE16.test(text)) throw new Error(`invalid base16 ${algorithm} digest '${text}'`);
    return Buffer.from(text, 'hex');
  }
  if (text.length === nix32Length(size)) return decodeNix32(text, size);
  if (text.length === Math.ceil(size / 3) * 4) return decodeBase64Digest(algorithm, text);
  throw new Error(
    `${algorithm} digest '${text}' has ${text.length} characters; expected ${size * 2} (base16), ` +
      `${nix32Length(size)} (nix32) or ${Math.ceil(size / 3) * 4} (base64)`,
  );
}

function decodeBase64Digest(algorithm: HashAlgorithm, text: string): Buffer {
  const digest = Buffer.from(text, 'base64');
  // Buffer.from ignores junk, so check that the text is the canonical spelling.
  if (!BASE64.test(text) || digest.length !== HASH_SIZES[algorithm] || digest.toString('base64') !== text) {
    throw new Error(`invalid base64 ${algorithm} digest '${text}'`);
  }
  return digest;
}

/** Parses `algo:digest` or SRI `algo-base64`. A bare digest is refused, as Nix does. */
export function parseHash(text: string): Hash {
  const colon = text.indexOf(':');
  const dash = text.indexOf('-');
  if (colon > 0 && (dash < 0 || colon < dash)) {
    const algorithm = text.slice(0, colon);
    if (!isAlgorithm(algorithm)) throw new Error(`unknown hash algorithm '${algorithm}' in '${text}'`);
    return { algorithm, digest: parseDigest(algorithm, text.slice(colon + 1)) };
  }
  if (dash > 0) {
    const algorithm = text.slice(0, dash);
    if (!isAlgorithm(algorithm)) throw new Error(`unknown hash algorithm '${algorithm}' in '${text}'`);
    return { algorithm, digest: decodeBase64Digest(algorithm, text.slice(dash + 1)) };
  }
  throw new Error(`hash '${text}' has no algorithm prefix; expected e.g. 'sha256:<digest>'`);
}

export function formatHash(hash: Hash, encoding: HashEncoding = 'nix32'): string {
  switch (encoding) {
    case 'nix32':
      return `${hash.algorithm}:${encodeNix32(hash.digest)}`;
    case 'base16':
      return `${hash.algorithm}:${hash.digest.toString('hex')}`;
    case 'base64':
      return `${hash.algorithm}:${hash.digest.toString('base64')}`;
    case 'sri':
      return `${hash.algorithm}-${hash.digest.toString('base64')}`;
  }
}

export function hashEquals(a: Hash, b: Hash): boolean {
  return a.algorithm === b.algorithm && a.digest.equals(b.digest);
}

export function sha256(data: string | Uint8Array): Hash {
  return { algorithm: 'sha256', digest: createHash('sha256').update(data).digest() };
}
