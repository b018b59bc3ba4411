// The pull-through proxy of a cache with `mirror` on. A narinfo the cache lacks
// is asked of its upstreams at once, under one deadline, and served (URL
// pointing here, upstream signatures kept, larder's added) only when signed by
// a key trusted for the upstream that answered. Its NAR is fetched when a
// client first asks for it: streamed to every client asking meanwhile while it
// is verified and stored, then published as a path of the cache like a pushed
// one. Replicas share the work through the index: the narinfo row tells any of
// them where the NAR is, and a lease makes one of them fetch it while the
// others wait for the stored copy.
//
// An upstream that fails (timeout, network, 5xx) is skipped for a few seconds,
// so that an outage costs one deadline, not one per request: meanwhile a miss
// is a fast 404 and what the cache holds is served as ever.

import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { IndexPreconditionError, type CacheIndex, type MirroredNarInfo, type UpstreamRecord } from '../../index/cache-index.ts';
import { signNarInfo } from '../../nix/fingerprint.ts';
import { formatNarInfo, parseNarInfo, type NarInfo } from '../../nix/narinfo.ts';
import { parsePublicKey, parseSecretKey, trustedKeyMap, type PublicKey } from '../../nix/signing-key.ts';
import { storePathBase } from '../../nix/store-path.ts';
import { StorageUnavailableError } from '../../storage/blob-store.ts';
import { narInfoKey, narKey } from '../../storage/layout.ts';
import { receiveNar, type PublishContext } from '../publish.ts';
import { Rejection } from '../rejection.ts';
import type { Telemetry } from '../telemetry.ts';
import { TtlCache } from '../ttl-cache.ts';
import { fetchUpstreamNarInfo } from '../upstream-fetch.ts';
import { planMirror } from './mirrored-narinfo.ts';
import { SharedDownload } from './shared-download.ts';

export interface MirrorSettings {
  /** How long a narinfo miss waits for the upstreams, all asked at once. */
  readonly narinfoTimeoutMs: number;
  /** How long "no upstream has it" is remembered. */
  readonly negativeTtlMs: number;
  /** A NAR download from an upstream that sends nothing for this long is given up. */
  readonly stallTimeoutMs: number;
  /** How long an upstream that failed is not asked. */
  readonly upstreamBackoffMs: number;
  /** How long a narinfo found upstream is served without its NAR before asking again. */
  readonly pendingTtlMs: number;
  /** Where downloads in progress are spooled for their followers. */
  readonly spoolDir: string;
  /** Add the cache's own signatures to upstream narinfos (clients may then trust larder's key alone). */
  readonly sign: boolean;
}

export const DEFAULT_MIRROR_SETTINGS: Omit<MirrorSettings, 'spoolDir'> = {
  narinfoTimeoutMs: 3000,
  negativeTtlMs: 30_000,
  stallTimeoutMs: 30_000,
  upstreamBackoffMs: 5000,
  pendingTtlMs: 24 * 60 * 60 * 1000,
  sign: true,
};

export interface MirrorContext extends PublishContext {
  readonly index: CacheIndex;
  /** This process's name in leases. */
  readonly holder: string;
  readonly telemetry: Telemetry;
}

/** A proxy download that could not be done; `status` is what the client is told. */
export class UpstreamFailure extends Error {
  readonly status: 404 | 502;
  constructor(status: 404 | 502, message: string) {
    super(message);
    this.name = 'UpstreamFailure';
    this.status = status;
  }
}

/** stored: the NAR is in storage now, serve it from there; streaming: follow the download. */
export type MirroredNar = { readonly kind: 'stored' } | { readonly kind: 'streaming'; readonly size: number | undefined; readonly stream: Readable };

type Claim = { readonly kind: 'unknown' } | { readonly kind: 'stored' } | { readonly kind: 'download'; readonly download: SharedDownload };

type Found = { readonly kind: 'present'; readonly upstream: UpstreamRecord; readonly info: NarInfo } | { readonly kind: 'absent' | 'unavailable' };

/** Renewed every third of it while a download runs; a crashed replica's lease lapses this soon. */
const LEASE_TTL_MS = 30_000;
const WAIT_POLL_MS = 200;
/** A replica waits this long at most for another one's download before answering 503. */
const MAX_WAIT_MS = 30 * 60_000;
/** Narinfos found are kept in memory this long: a changed upstream list shows within it. */
const FOUND_TTL_MS = 10_000;

export class Mirror {
  readonly #ctx: MirrorContext;
  readonly #settings: MirrorSettings;
  /** Narinfos found upstream, as served. */
  readonly #found: TtlCache<string>;
  readonly #absent: TtlCache<true>;
  readonly #asking = new Map<string, Promise<string | undefined>>();
  readonly #downUntil = new Map<string, number>();
  readonly #trusted = new Map<string, ReadonlyMap<string, PublicKey>>();
  readonly #downloads = new Map<string, Promise<Claim>>();

  constructor(ctx: MirrorContext, settings: MirrorSettings) {
    this.#ctx = ctx;
    this.#settings = settings;
    this.#found = new TtlCache(50_000, FOUND_TTL_MS);
    this.#absent = new TtlCache(100_000, settings.negativeTtlMs);
  }

  /** The narinfo to serve for a path the cache lacks, or undefined (a 404). */
  narinfo(cache: string, hashPart: string): Promise<string | undefined> {
    const key = `${cache}/${hashPart}`;
    const found = this.#found.get(key);
    if (found !== undefined) return Promise.resolve(found);
    if (this.#absent.get(key)) return Promise.resolve(undefined);
    let asking = this.#asking.get(key);
    if (!asking) {
      asking = this.#lookUp(cache, hashPart).finally(() => this.#asking.delete(key));
      this.#asking.set(key, asking);
    }
    return asking;
  }

  /** A NAR the cache knows upstream, with its size if the narinfo gives one (for HEAD); undefined when it knows none. */
  async narSize(cache: string, fileName: string): Promise<{ readonly size: number | undefined } | undefined> {
    const [entry] = await this.#ctx.index.mirroredNarInfosByFile(cache, fileName);
    return entry && { size: parseNarInfo(entry.narinfo, this.#ctx.storeDir).fileSize };
  }

  /** A NAR the cache lacks: fetched (or being fetched) from its upstream; undefined when none is known. */
  async fetchNar(cache: string, fileName: string): Promise<MirroredNar | undefined> {
    const key = `${cache}/${fileName}`;
    let claim = this.#downloads.get(key);
    if (!claim) {
      claim = this.#claim(cache, fileName);
      this.#downloads.set(key, claim);
      // Only a running download stays listed; it removes itself when it ends.
      claim.then(
        (c) => c.kind !== 'download' && this.#downloads.delete(key),
        () => this.#downloads.delete(key),
      );
    }
    const outcome = await claim;
    if (outcome.kind === 'unknown') return undefined;
    if (outcome.kind === 'stored') return { kind: 'stored' };
    const { download } = outcome;
    await download.started();
    if (download.failure) throw download.failure;
    try {
      return { kind: 'streaming', size: download.size, stream: download.follow() };
    } catch {
      // It ended between the two lines: done, since it did not fail.
      return { kind: 'stored' };
    }
  }

  async #lookUp(cache: string, hashPart: string): Promise<string | undefined> {
    const { index, storeDir, telemetry } = this.#ctx;
    const key = `${cache}/${hashPart}`;
    const known = await index.getMirroredNarInfo(cache, hashPart);
    if (known && known.fetchedAt > Date.now() - this.#settings.pendingTtlMs) {
      this.#found.set(key, known.narinfo);
      return known.narinfo;
    }
    const upstreams = await index.listUpstreams(cache);
    if (upstreams.length === 0) return undefined;
    const found = await this.#ask(upstreams, hashPart);
    telemetry.upstreamLookup(cache, found.kind === 'present' ? 'hit' : found.kind === 'absent' ? 'miss' : 'unavailable');
    if (found.kind !== 'present') {
      if (found.kind === 'absent') this.#absent.set(key, true);
      return undefined;
    }
    const plan = planMirror(found.upstream.url, found.info);
    if ('refused' in plan) {
      process.stderr.write(`larder: mirror: not serving ${hashPart} from ${found.upstream.url}: ${plan.refused}\n`);
      this.#absent.set(key, true);
      return undefined;
    }
    const keys = this.#settings.sign
      ? (await index.listKeys(cache)).filter((k) => k.state === 'active').map((k) => parseSecretKey(k.secretKey))
      : [];
    const narinfo = formatNarInfo(signNarInfo(plan.narinfo, keys, storeDir), storeDir);
    const entry: MirroredNarInfo = {
      cache,
      hashPart,
      fileName: plan.fileName,
      upstream: found.upstream.url,
      narUrl: plan.narUrl,
      narinfo,
      fetchedAt: Date.now(),
    };
    await index.putMirroredNarInfo(entry);
    // The NAR may be here already (another path with the same contents): then the path is complete now.
    if (await index.getNar(cache, fileHashOf(plan.fileName))) await this.#publish([entry]);
    this.#found.set(key, narinfo);
    return narinfo;
  }

  /** The best-priority upstream that has the path signed, all asked at once under one deadline. */
  async #ask(upstreams: readonly UpstreamRecord[], hashPart: string): Promise<Found> {
    const now = Date.now();
    const live = upstreams.filter((u) => (this.#downUntil.get(u.url) ?? 0) <= now).sort((a, b) => a.priority - b.priority);
    const controller = new AbortController();
    const options = { storeDir: this.#ctx.storeDir, timeoutMs: this.#settings.narinfoTimeoutMs, signal: controller.signal };
    const asks = live.map((upstream) =>
      fetchUpstreamNarInfo(upstream.url, this.#trustedKeys(upstream), hashPart, options).then((answer) => {
        if (answer.kind === 'failed' && !controller.signal.aborted) this.#downUntil.set(upstream.url, Date.now() + this.#settings.upstreamBackoffMs);
        return answer;
      }),
    );
    let unavailable = live.length < upstreams.length;
    try {
      for (const [i, ask] of asks.entries()) {
        const answer = await ask;
        if (answer.kind === 'present') return { kind: 'present', upstream: live[i]!, info: answer.info };
        if (answer.kind === 'failed') unavailable = true;
      }
    } finally {
      // The lower-priority answers are not needed once a better one said yes.
      controller.abort();
    }
    return { kind: unavailable ? 'unavailable' : 'absent' };
  }

  #trustedKeys(upstream: UpstreamRecord): ReadonlyMap<string, PublicKey> {
    const id = upstream.publicKeys.join(' ');
    let trusted = this.#trusted.get(id);
    if (!trusted) {
      trusted = trustedKeyMap(upstream.publicKeys.map((k) => parsePublicKey(k)));
      this.#trusted.set(id, trusted);
    }
    return trusted;
  }

  /** Starts the download here, or learns that it is stored or being fetched by another replica. */
  async #claim(cache: string, fileName: string): Promise<Claim> {
    const { index, store, holder } = this.#ctx;
    const entries = await index.mirroredNarInfosByFile(cache, fileName);
    if (entries.length === 0) return { kind: 'unknown' };
    const blobKey = narKey(cache, `nar/${fileName}`);
    const lease = `mirror/${cache}/${fileName}`;
    const deadline = Date.now() + MAX_WAIT_MS;
    for (;;) {
      if ((await store.stat(blobKey)) !== undefined) return { kind: 'stored' };
      if (await index.acquireLease(lease, holder, LEASE_TTL_MS)) {
        // It may have been stored between the look and the lease.
        if ((await store.stat(blobKey)) !== undefined) {
          await index.releaseLease(lease, holder);
          return { kind: 'stored' };
        }
        const info = parseNarInfo(entries[0]!.narinfo, this.#ctx.storeDir);
        const download = await SharedDownload.create(this.#settings.spoolDir, info.fileSize);
        void this.#run(entries, info, download, lease);
        return { kind: 'download', download };
      }
      if (Date.now() > deadline) throw new StorageUnavailableError(`another replica is still fetching ${fileName} from upstream`);
      await sleep(WAIT_POLL_MS);
    }
  }

  /** Fetches, verifies and stores the NAR, feeding the download's followers; publishes the paths. */
  async #run(entries: readonly MirroredNarInfo[], info: NarInfo, download: SharedDownload, lease: string): Promise<void> {
    const { index, holder, telemetry } = this.#ctx;
    const entry = entries[0]!;
    const key = `${entry.cache}/${entry.fileName}`;
    const renew = setInterval(() => void index.acquireLease(lease, holder, LEASE_TTL_MS).catch(() => {}), LEASE_TTL_MS / 3);
    const controller = new AbortController();
    let stall: NodeJS.Timeout | undefined;
    const armStall = () => {
      clearTimeout(stall);
      stall = setTimeout(() => controller.abort(new Error(`no data for ${this.#settings.stallTimeoutMs} ms`)), this.#settings.stallTimeoutMs);
    };
    let fetched = 0;
    try {
      armStall();
      let res: Response;
      try {
        res = await fetch(entry.narUrl, { signal: controller.signal });
      } catch (error) {
        throw new UpstreamFailure(502, `cannot fetch ${entry.narUrl}: ${reason(error)}`);
      }
      if (res.status !== 200 || !res.body) {
        await res.body?.cancel();
        if (res.status === 404 || res.status === 410 || res.status === 403) {
          // The upstream lost it: its narinfo must not be served any more either.
          for (const e of entries) await index.deleteMirroredNarInfo(e.cache, e.hashPart);
          for (const e of entries) this.#found.delete(`${e.cache}/${e.hashPart}`);
          throw new UpstreamFailure(404, `${entry.narUrl} answered ${res.status}`);
        }
        throw new UpstreamFailure(502, `${entry.narUrl} answered ${res.status}`);
      }
      const body = res.body;
      const fileSize = info.fileSize;
      const tapped = Readable.from(
        (async function* () {
          for await (const bytes of body) {
            // fetch yields Uint8Arrays; the intake, like an HTTP upload, works on Buffers (no copy).
            const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
            armStall();
            fetched += chunk.length;
            if (fileSize !== undefined && fetched > fileSize) {
              throw new Rejection('mismatch', `FileSize: the upstream narinfo says ${fileSize} bytes but ${entry.narUrl} sends more`);
            }
            await download.append(chunk);
            yield chunk;
          }
        })(),
      );
      try {
        // Not an upload: a failure here is counted as a failed fetch, not as a refused upload.
        const intake = { ...this.#ctx, telemetry: undefined };
        await receiveNar(intake, entry.cache, entry.fileName, tapped, { upstream: entry.upstream, narHash: info.narHash, narSize: info.narSize });
      } catch (error) {
        if (controller.signal.aborted) throw new UpstreamFailure(502, `fetching ${entry.narUrl}: ${reason(controller.signal.reason)}`);
        if (error instanceof Rejection) throw new UpstreamFailure(502, `${entry.narUrl} failed verification: ${error.message}`);
        if (error instanceof TypeError) throw new UpstreamFailure(502, `fetching ${entry.narUrl}: ${reason(error)}`);
        throw error;
      }
      await this.#publish(entries);
      telemetry.upstreamBytesFetched(entry.cache, fetched);
      this.#downloads.delete(key);
      download.succeed();
    } catch (error) {
      this.#downloads.delete(key);
      download.fail(error as Error);
      telemetry.upstreamFetchFailed(entry.cache);
      process.stderr.write(`larder: mirror: ${(error as Error).message}\n`);
    } finally {
      clearInterval(renew);
      clearTimeout(stall);
      controller.abort();
      await index.releaseLease(lease, holder).catch(() => {});
    }
  }

  /** The paths whose NAR is stored now become paths of the cache, as if pushed. */
  async #publish(entries: readonly MirroredNarInfo[]): Promise<void> {
    const { index, store, storeDir } = this.#ctx;
    for (const entry of entries) {
      const info = parseNarInfo(entry.narinfo, storeDir);
      await store.put(narInfoKey(entry.cache, entry.hashPart), entry.narinfo);
      try {
        await index.putPath(
          {
            cache: entry.cache,
            hashPart: entry.hashPart,
            base: storePathBase(info.storePath),
            fileHash: fileHashOf(entry.fileName),
            narSize: info.narSize,
            // Vouched for by the upstream's signature: they need not be here (they are fetched when asked for).
            references: [...new Set(info.references.map((r) => r.hashPart))],
            narinfo: entry.narinfo,
            createdAt: Date.now(),
          },
          { nar: true, references: [] },
        );
      } catch (error) {
        // Garbage collection took the NAR meanwhile: the narinfo stays pending and is fetched again.
        if (error instanceof IndexPreconditionError) continue;
        throw error;
      }
      await index.deleteMirroredNarInfo(entry.cache, entry.hashPart);
    }
  }
}

function fileHashOf(fileName: string): string {
  return fileName.slice(0, fileName.indexOf('.'));
}

function reason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  return cause?.code ?? cause?.message ?? (error as Error | undefined)?.message ?? String(error);
}
