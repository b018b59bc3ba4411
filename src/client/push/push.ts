// `larder push`: upload exactly the paths a cache lacks. NARs are made and
// uploaded concurrently (bounded); each narinfo is committed as soon as its
// NAR is up and its references are committed, so the cache shows a complete
// closure at every moment and an interrupted push resumes where it stopped.

import { pipeline, Readable, Transform } from 'node:stream';
import { formatNarInfo, type NarInfo } from '../../nix/narinfo.ts';
import { parseHash } from '../../nix/hash.ts';
import { parseContentAddress } from '../../nix/content-address.ts';
import { encodeNix32 } from '../../nix/nix32.ts';
import { parseStorePath } from '../../nix/store-path.ts';
import type { LocalPathInfo } from '../local-nix.ts';
import type { CacheEndpoint } from './cache-endpoint.ts';
import { spoolNar, type SpoolOptions } from './nar-spool.ts';
import { dependencyOrder } from '../../nix/closure-order.ts';
import { CommitGate } from './push-order.ts';

export interface PushEvents {
  planned?(plan: { total: number; present: number; upstream: number; toPush: number; narBytes: number }): void;
  started?(path: string): void;
  bytesSent?(count: number): void;
  /** The path's narinfo is committed: it is in the cache. */
  pushed?(path: string, fileSize: number, narAlreadyThere: boolean): void;
  failed?(path: string, reason: string): void;
}

export interface PushOptions {
  readonly endpoint: CacheEndpoint;
  readonly storeDir: string;
  /** The candidate paths with their infos: a closure. */
  readonly paths: readonly LocalPathInfo[];
  readonly jobs: number;
  readonly spool: SpoolOptions;
  /** Paths (of those the cache lacks) that an upstream already serves. */
  readonly servedUpstream?: (paths: readonly LocalPathInfo[]) => Promise<Set<string>>;
  readonly events?: PushEvents;
}

export interface PushSummary {
  readonly total: number;
  readonly pushed: number;
  readonly present: number;
  readonly upstream: number;
  readonly failed: ReadonlyArray<{ path: string; reason: string }>;
  /** Compressed bytes sent. */
  readonly bytes: number;
  readonly seconds: number;
}

interface Uploaded {
  readonly url: string;
  readonly fileHash: string;
  readonly fileSize: number;
}

export async function push(options: PushOptions): Promise<PushSummary> {
  const started = performance.now();
  const { endpoint, events = {} } = options;
  const missing = await endpoint.missing(options.paths.map((p) => p.path));
  const lacking = options.paths.filter((p) => missing.has(p.path));
  const upstream = options.servedUpstream && lacking.length > 0 ? await options.servedUpstream(lacking) : new Set<string>();
  const toPush = dependencyOrder(lacking.filter((p) => !upstream.has(p.path)));
  events.planned?.({
    total: options.paths.length,
    present: options.paths.length - lacking.length,
    upstream: upstream.size,
    toPush: toPush.length,
    narBytes: toPush.reduce((sum, p) => sum + p.narSize, 0),
  });

  const byPath = new Map(toPush.map((p) => [p.path, p]));
  const gate = new CommitGate(toPush);
  const uploaded = new Map<string, Uploaded & { narWasThere: boolean }>();
  const failed: Array<{ path: string; reason: string }> = [];
  const failedPaths = new Set<string>();
  const fail = (path: string, reason: string) => {
    failed.push({ path, reason });
    failedPaths.add(path);
    events.failed?.(path, reason);
  };
  let bytes = 0;
  let pushed = 0;
  const commits: Promise<void>[] = [];

  const commit = (path: string): void => {
    commits.push(
      (async () => {
        const info = byPath.get(path)!;
        const up = uploaded.get(path)!;
        try {
          const hashPart = parseStorePath(path, options.storeDir).hashPart;
          const text = formatNarInfo(narInfoFor(info, up, options.storeDir), options.storeDir);
          await endpoint.putFile(`${hashPart}.narinfo`, Buffer.byteLength(text), () => Readable.from([Buffer.from(text)]), 'text/x-nix-narinfo');
        } catch (error) {
          fail(path, (error as Error).message);
          return;
        }
        pushed++;
        events.pushed?.(path, up.fileSize, up.narWasThere);
        for (const next of gate.committed(path)) commit(next);
      })(),
    );
  };

  const uploadOne = async (info: LocalPathInfo): Promise<void> => {
    events.started?.(info.path);
    const spooled = await spoolNar(info.path, options.spool);
    try {
      if (spooled.narSize !== info.narSize || !spooled.narHash.equals(info.narHash.digest)) {
        throw new Error(
          `the local store's NarHash/NarSize (${encodeNix32(info.narHash.digest)}, ${info.narSize}) disagree with the path's contents ` +
            `(${encodeNix32(spooled.narHash)}, ${spooled.narSize}); run 'nix-store --verify --check-contents'`,
        );
      }
      const url = `nar/${spooled.fileHash}.nar.zst`;
      const narWasThere = await endpoint.hasFile(url);
      if (!narWasThere) {
        await endpoint.putFile(url, spooled.fileSize, () => counted(spooled.body(), (n) => {
          bytes += n;
          events.bytesSent?.(n);
        }), 'application/x-nix-nar');
      }
      uploaded.set(info.path, { url, fileHash: spooled.fileHash, fileSize: spooled.fileSize, narWasThere });
    } finally {
      await spooled.dispose();
    }
    for (const ready of gate.uploadedPath(info.path)) commit(ready);
  };

  let next = 0;
  const worker = async () => {
    while (next < toPush.length) {
      const info = toPush[next++]!;
      try {
        await uploadOne(info);
      } catch (error) {
        fail(info.path, (error as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.jobs) }, worker));
  // Commits start other commits: wait until no new ones appear.
  for (let awaited = 0; awaited < commits.length; ) {
    const batch = commits.slice(awaited);
    awaited = commits.length;
    await Promise.all(batch);
  }

  const committed = new Set<string>();
  for (const info of toPush) if (uploaded.has(info.path) && !failedPaths.has(info.path)) committed.add(info.path);
  for (const info of toPush) {
    if (!committed.has(info.path) && !failedPaths.has(info.path)) fail(info.path, 'not committed: a path it refers to failed');
  }
  return {
    total: options.paths.length,
    pushed,
    present: options.paths.length - lacking.length,
    upstream: upstream.size,
    failed,
    bytes,
    seconds: (performance.now() - started) / 1000,
  };
}

function narInfoFor(info: LocalPathInfo, up: Uploaded, storeDir: string): NarInfo {
  return {
    storePath: parseStorePath(info.path, storeDir),
    url: up.url,
    compression: 'zstd',
    fileHash: parseHash(`sha256:${up.fileHash}`),
    fileSize: up.fileSize,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references.map((r) => parseStorePath(r, storeDir)),
    ...(info.deriver && { deriver: parseStorePath(info.deriver, storeDir) }),
    sigs: info.signatures,
    ...(info.ca && { ca: parseContentAddress(info.ca) }),
  };
}

function counted(stream: Readable, onBytes: (n: number) => void): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
  return pipeline(stream, counter, () => {});
}
