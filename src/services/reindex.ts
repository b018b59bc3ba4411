// Rebuilding the index from the blob store (architecture invariant 1): every
// `<cache>/<hash>.narinfo` is parsed, checked against the NAR file it names,
// re-signed with the cache's keys, and indexed with its references present
// first. This is how a cache written by `nix copy --to file://…` or
// `s3://…` is adopted, and how an index is recovered from a bucket.

import { text } from 'node:stream/consumers';
import { parseNarFileName } from './publish.ts';
import type { Larder } from './larder.ts';
import { createCache } from './cache-admin.ts';
import { signNarInfo } from '../nix/fingerprint.ts';
import { formatHash, parseHash } from '../nix/hash.ts';
import { formatNarInfo, parseNarInfo, type NarInfo } from '../nix/narinfo.ts';
import { parseSecretKey } from '../nix/signing-key.ts';
import { storePathBase } from '../nix/store-path.ts';
import { narInfoKey, narKey } from '../storage/layout.ts';
import { dependencyOrder } from '../nix/closure-order.ts';

export interface ReindexReport {
  readonly indexed: number;
  readonly alreadyIndexed: number;
  /** Narinfos left out, with the reason. */
  readonly skipped: ReadonlyArray<{ readonly key: string; readonly reason: string }>;
}

const NARINFO_KEY = /^[^/]+\/([0-9a-z]{32})\.narinfo$/;

export async function reindexCache(larder: Larder, cache: string): Promise<ReindexReport> {
  if (!(await larder.index.getCache(cache))) await createCache(larder, cache);
  const keys = (await larder.index.listKeys(cache)).filter((k) => k.state === 'active').map((k) => parseSecretKey(k.secretKey));
  const skipped: Array<{ key: string; reason: string }> = [];
  const found: Array<{ key: string; info: NarInfo; path: string; references: string[] }> = [];

  for await (const key of larder.store.list(cache)) {
    const match = NARINFO_KEY.exec(key);
    if (!match) continue;
    try {
      const blob = await larder.store.open(key);
      if (!blob) continue;
      const info = parseNarInfo(await text(blob.stream), larder.storeDir);
      if (info.storePath.hashPart !== match[1]) throw new Error(`StorePath ${storePathBase(info.storePath)} does not match the file name`);
      const path = storePathBase(info.storePath);
      found.push({ key, info, path, references: info.references.map(storePathBase).filter((r) => r !== path) });
    } catch (error) {
      skipped.push({ key, reason: (error as Error).message });
    }
  }

  let indexed = 0;
  let alreadyIndexed = 0;
  const indexedPaths = new Set<string>();
  for (const { key, info, path, references } of dependencyOrder(found)) {
    try {
      const hashPart = info.storePath.hashPart;
      if (await larder.index.getPath(cache, hashPart)) {
        alreadyIndexed++;
        indexedPaths.add(path);
        continue;
      }
      const absent = references.filter((r) => !indexedPaths.has(r));
      const present = await larder.index.presentPaths(cache, absent.map((r) => r.slice(0, 32)));
      const missing = absent.filter((r) => !present.has(r.slice(0, 32)));
      if (missing.length > 0) throw new Error(`references not in the cache: ${missing.join(' ')}`);
      const complete = await checkNar(larder, cache, info);
      const narinfo = formatNarInfo(signNarInfo(complete, keys, larder.storeDir), larder.storeDir);
      await larder.store.put(narInfoKey(cache, hashPart), narinfo);
      await larder.index.putPath({
        cache,
        hashPart,
        base: path,
        fileHash: parseNarFileName(complete.url.slice(4)).fileHash,
        narSize: complete.narSize,
        references: [...new Set(complete.references.map((r) => r.hashPart))],
        narinfo,
        createdAt: Date.now(),
      }, { nar: true });
      indexedPaths.add(path);
      indexed++;
    } catch (error) {
      skipped.push({ key, reason: (error as Error).message });
    }
  }
  return { indexed, alreadyIndexed, skipped };
}

/** The NAR a narinfo names must be there, with the size and compression it claims; it is then indexed. */
async function checkNar(larder: Larder, cache: string, info: NarInfo): Promise<NarInfo> {
  if (!info.url.startsWith('nar/')) throw new Error(`URL ${info.url} is not under nar/`);
  const { fileHash, compression } = parseNarFileName(info.url.slice(4));
  if (compression !== info.compression) throw new Error(`Compression ${info.compression} does not match the URL ${info.url}`);
  if (info.fileHash && formatHash(info.fileHash) !== `sha256:${fileHash}`) throw new Error(`FileHash does not match the URL ${info.url}`);
  const size = await larder.store.stat(narKey(cache, info.url));
  if (size === undefined) throw new Error(`its NAR ${info.url} is missing`);
  if (info.fileSize !== undefined && info.fileSize !== size) throw new Error(`FileSize ${info.fileSize} but ${info.url} has ${size} bytes`);
  await larder.index.putNar({
    cache,
    fileHash,
    url: info.url,
    compression,
    fileSize: size,
    narHash: formatHash(info.narHash),
    narSize: info.narSize,
    createdAt: Date.now(),
  });
  return { ...info, fileHash: parseHash(`sha256:${fileHash}`), fileSize: size };
}
