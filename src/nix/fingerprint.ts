// What a narinfo signature covers (src/libstore/path-info.cc `fingerprint`):
// `1;<store path>;sha256:<nix32 NarHash>;<NarSize>;<full reference paths, sorted, comma-joined>`.

import { formatHash } from './hash.ts';
import { sortedReferenceBases, type NarInfo } from './narinfo.ts';
import { signMessage, verifySignature, type PublicKey, type SecretKey } from './signing-key.ts';
import { DEFAULT_STORE_DIR, printStorePath } from './store-path.ts';

type Signed = Pick<NarInfo, 'storePath' | 'narHash' | 'narSize' | 'references'>;

export function fingerprint(info: Signed, storeDir = DEFAULT_STORE_DIR): string {
  if (info.narHash.algorithm !== 'sha256') throw new Error('a fingerprint needs a sha256 NarHash');
  const references = sortedReferenceBases(info).map((base) => `${storeDir}/${base}`);
  return `1;${printStorePath(info.storePath, storeDir)};${formatHash(info.narHash)};${info.narSize};${references.join(',')}`;
}

/** The narinfo with a signature by each key added (a set: no duplicates). */
export function signNarInfo<T extends NarInfo>(info: T, keys: readonly SecretKey[], storeDir = DEFAULT_STORE_DIR): T {
  const message = fingerprint(info, storeDir);
  const sigs = new Set(info.sigs);
  for (const key of keys) sigs.add(signMessage(key, message));
  return { ...info, sigs: [...sigs] };
}

/** The names of the trusted keys that validly signed this narinfo. */
export function validSigners(info: Signed & Pick<NarInfo, 'sigs'>, trusted: ReadonlyMap<string, PublicKey>, storeDir = DEFAULT_STORE_DIR): string[] {
  const message = fingerprint(info, storeDir);
  return info.sigs.filter((sig) => verifySignature(sig, message, trusted)).map((sig) => sig.slice(0, sig.indexOf(':')));
}
