// Paths an upstream cache already serves need not be pushed: a client that
// lists both substituters gets them from the upstream. "Serves" means what the
// local Nix would accept: a narinfo signed by a key it trusts.

import { askUpstream } from '../../services/upstream-fetch.ts';
import { parsePublicKey, trustedKeyMap, type PublicKey } from '../../nix/signing-key.ts';
import { parseStorePath } from '../../nix/store-path.ts';
import type { LocalPathInfo } from '../local-nix.ts';

const CONCURRENCY = 16;

export function upstreamSkipper(upstreams: readonly string[], trustedKeys: readonly string[], storeDir: string) {
  const trusted: ReadonlyMap<string, PublicKey> = trustedKeyMap(trustedKeys.flatMap((k) => {
    try {
      return [parsePublicKey(k)];
    } catch {
      return []; // a malformed key in nix.conf is Nix's business; it trusts nothing by it either
    }
  }));
  return async (paths: readonly LocalPathInfo[]): Promise<Set<string>> => {
    const served = new Set<string>();
    if (upstreams.length === 0 || trusted.size === 0) return served;
    let next = 0;
    const worker = async () => {
      while (next < paths.length) {
        const path = paths[next++]!.path;
        const { hashPart } = parseStorePath(path, storeDir);
        for (const url of upstreams) {
          if ((await askUpstream(url, trusted, hashPart, { storeDir, timeoutMs: 10_000 })) === 'present') {
            served.add(path);
            break;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return served;
  };
}
