// A narinfo as the path page shows it: its fields, and each signature checked
// against the cache's key of that name. Pure: the keys come from the caller.

import type { KeyRecord } from '../index/cache-index.ts';
import { fingerprint } from '../nix/fingerprint.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { parsePublicKey, verifySignature } from '../nix/signing-key.ts';
import type { SignatureView } from './pages/path.ts';

/** The narinfo's lines other than References and Sig (shown on their own), as name and value. */
export function narinfoFields(narinfo: string): { name: string; value: string }[] {
  return narinfo
    .split('\n')
    .map((line) => {
      const colon = line.indexOf(':');
      return colon < 0 ? undefined : { name: line.slice(0, colon), value: line.slice(colon + 1).trim() };
    })
    .filter((f): f is { name: string; value: string } => f !== undefined && f.name !== 'References' && f.name !== 'Sig');
}

/** Each signature with the state of the cache's key of that name, and whether it verifies with it. */
export function signatureViews(info: NarInfo, keys: readonly KeyRecord[], storeDir: string): SignatureView[] {
  const message = fingerprint(info, storeDir);
  return info.sigs.map((sig) => {
    const keyName = sig.slice(0, sig.indexOf(':'));
    const key = keys.find((k) => k.name === keyName);
    let valid = false;
    if (key) {
      try {
        const publicKey = parsePublicKey(key.publicKey);
        valid = verifySignature(sig, message, new Map([[publicKey.name, publicKey]]));
      } catch {
        valid = false;
      }
    }
    return { keyName, value: sig, keyState: key?.state ?? 'unknown', valid };
  });
}
