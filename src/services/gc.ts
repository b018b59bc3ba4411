// Garbage collection of a cache: plan with gc-plan.ts over the graph that
// gc-graph.ts loads, then delete in an order that never shows a broken state:
//
// 1. Paths, referrers first, in batches. Each batch is one index transaction
//    that locks the rows, then re-checks what may have changed since the plan
//    (a new referrer, a new pin, an access) and spares those paths; the rows go
//    (the narinfo is no longer served), then their narinfo and listing files.
//    A deletion bumps the cache's generation, which drops cached narinfos on
//    every replica within a second.
// 2. After a pause longer than that second, the NARs no path uses any more: each
//    claimed in the index (a claimed NAR counts as absent, and its file cannot be
//    written meanwhile), its file deleted, its record dropped. A download
//    already streaming finishes (an open file survives its unlink; an S3 GET in
//    progress completes).
// 3. Orphans older than the upload grace period: NAR records no path uses
//    (uploads that never got their narinfo), files without a record, and what
//    dead writes left in the store (temporary files, unfinished multipart uploads).
//
// One run per cache at a time, across replicas: the index's lease `gc/<cache>`.

import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CacheIndex, DeletedPath, NarClaim, NarClaimRules, SpareReason } from '../index/cache-index.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { listingKey, narInfoKey, narKey } from '../storage/layout.ts';
import { DEFAULT_MIRROR_SETTINGS } from './mirror/mirror.ts';
import type { AccessLog } from './access-log.ts';
import { loadPathGraph, type LoadedGraph } from './gc-graph.ts';
import { Fate, pinClosures, planGc, type GcPlan } from './gc-plan.ts';
import { Rejection } from './rejection.ts';
import type { Telemetry } from './telemetry.ts';
import { formatBytes } from './units.ts';

export interface GcSettings {
  /** NARs stored without a narinfo yet (uploads in flight), and stray files, younger than this are kept. */
  readonly uploadGraceMs: number;
  /** Added to a cache's retention, for accesses other processes noted but have not written yet. */
  readonly accessSlackMs: number;
  /** Pause between deleting narinfos and deleting their NARs: longer than any replica serves a cached narinfo. */
  readonly narinfoVisibilityMs: number;
  /** A NAR claimed for deletion longer ago than this was left by a deleter that died: claimed again. */
  readonly staleClaimMs: number;
  /** Paths per deletion transaction. */
  readonly batchSize: number;
  /** The run lease's TTL, renewed after each batch. */
  readonly runLeaseMs: number;
}

export const DEFAULT_GC_SETTINGS: GcSettings = {
  uploadGraceMs: 60 * 60_000,
  accessSlackMs: 60_000,
  narinfoVisibilityMs: 2_000,
  staleClaimMs: 10 * 60_000,
  batchSize: 500,
  runLeaseMs: 10 * 60_000,
};

export interface GcContext {
  readonly index: CacheIndex;
  readonly store: BlobStore;
  readonly storeDir: string;
  /** This process's accesses not yet written: flushed before planning and before each batch. */
  readonly accesses?: AccessLog;
  /** This process's name in leases. */
  readonly holder: string;
  readonly gcSettings: GcSettings;
  readonly now: () => number;
  /** Told after paths of a cache were deleted, so that this process's caches forget them at once. */
  readonly pathsDeleted?: (cache: string) => void;
  /** Where finished runs are counted; silent when absent. */
  readonly telemetry?: Telemetry;
}

/** A unique holder name for this process's leases. */
export function leaseHolder(): string {
  return `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export interface GcOptions {
  /** Report what would be deleted, delete nothing. */
  readonly dryRun?: boolean;
  /** List every path freed (and deleted), not only examples. */
  readonly list?: boolean;
  /** Stops a real run between batches (what is deleted stays deleted, nothing is left half done). */
  readonly signal?: AbortSignal;
}

export type KeptReason = 'pinned' | 'recent' | 'unlimited' | 'referenced';

export interface KeptExample {
  readonly storePath: string;
  readonly reason: KeptReason;
  readonly pin?: string;
  readonly accessedAt?: number;
  readonly referencedBy?: string;
}

export interface FreedExample {
  readonly storePath: string;
  readonly reason: 'expired' | 'evicted';
  readonly accessedAt: number;
}

export interface GcReport {
  readonly cache: string;
  readonly dryRun: boolean;
  readonly startedAt: number;
  readonly policy: { readonly retentionMs: number | null; readonly maxSize: number | null; readonly uploadGraceMs: number };
  readonly timings: { readonly loadMs: number; readonly planMs: number; readonly totalMs: number };
  /** Paths in the cache and the bytes of their NARs. */
  readonly paths: number;
  readonly bytes: number;
  readonly kept: {
    readonly paths: number;
    readonly bytes: number;
    /** Each pin with its closure (null when the closures were too large to measure one by one). */
    readonly pins: readonly { readonly name: string; readonly storePath: string; readonly paths: number | null; readonly bytes: number | null }[];
    readonly pinnedRoots: number;
    /** Roots accessed within the retention period, and the oldest such access. */
    readonly recentRoots: number;
    readonly oldestRecentAccess: number | null;
    /** Roots kept because the cache has no retention period. */
    readonly unlimitedRoots: number;
    /** Kept only because a kept path refers to them (pinned closures included). */
    readonly referenced: number;
    readonly examples: readonly KeptExample[];
  };
  /** What the plan frees. */
  readonly freed: {
    readonly paths: number;
    readonly bytes: number;
    readonly expired: { readonly paths: number; readonly bytes: number };
    readonly evicted: { readonly paths: number; readonly bytes: number };
    readonly examples: readonly FreedExample[];
    /** sha256 of the freed hash parts, sorted, one per line: compares a dry run with the real one. */
    readonly digest: string;
    readonly list?: readonly string[];
  };
  readonly quota: GcPlan['quota'];
  /** What the run deleted (null for a dry run). */
  readonly deleted: {
    readonly paths: number;
    readonly nars: number;
    readonly bytes: number;
    readonly digest: string;
    readonly list?: readonly string[];
    /** Paths of the plan kept after all: changed since planning. */
    readonly spared: Readonly<Record<SpareReason, number>>;
    /** Whether the run was stopped before the end. */
    readonly stopped: boolean;
  } | null;
  /** Orphans removed (or, in a dry run, that would be). */
  readonly orphans: {
    /** NAR records no path uses, older than the grace period, with their files. */
    readonly nars: number;
    readonly narBytes: number;
    /** Files of the cache with no index record, older than the grace period. */
    readonly files: number;
    /** Temporary files and unfinished uploads of the whole store. */
    readonly abandoned: number;
  };
}

const EXAMPLES = 5;
const FREED_EXAMPLES = 10;

function digestOf(hashParts: string[]): string {
  const hash = createHash('sha256');
  for (const h of hashParts.sort()) hash.update(`${h}\n`);
  return hash.digest('hex');
}

/** Runs garbage collection on one cache; see the top of this file. */
export async function runGc(ctx: GcContext, cacheName: string, options: GcOptions = {}): Promise<GcReport> {
  const cache = await ctx.index.getCache(cacheName);
  if (!cache) throw new Rejection('conflict', `no cache '${cacheName}'`);
  const dryRun = options.dryRun ?? false;
  const lease = dryRun ? undefined : await RunLease.take(ctx, cacheName);
  try {
    const started = performance.now();
    const startedAt = ctx.now();
    await ctx.accesses?.flush();
    const loaded = await loadPathGraph(ctx.index, cacheName);
    const loadMs = performance.now() - started;
    const plan = planGc(loaded.graph, {
      keepAccessedSince: cache.retentionMs === null ? null : startedAt - cache.retentionMs - ctx.gcSettings.accessSlackMs,
      maxSize: cache.maxSize,
    });
    const planMs = performance.now() - started - loadMs;
    const described = await describePlan(ctx, cacheName, loaded, plan, options.list ?? false);

    let deleted: GcReport['deleted'] = null;
    if (lease) deleted = await deletePlanned(ctx, cacheName, loaded, plan, startedAt, lease, options);
    const orphans = await collectOrphans(ctx, cacheName, dryRun, lease, options.signal);
    // Narinfos the mirror found upstream but whose NAR nobody asked for: asked again when needed.
    if (lease) await ctx.index.expireMirroredNarInfos(cacheName, startedAt - DEFAULT_MIRROR_SETTINGS.pendingTtlMs);
    if (deleted) ctx.telemetry?.gcRun(cacheName, deleted.paths, deleted.bytes + orphans.narBytes);
    return {
      cache: cacheName,
      dryRun,
      startedAt,
      policy: { retentionMs: cache.retentionMs, maxSize: cache.maxSize, uploadGraceMs: ctx.gcSettings.uploadGraceMs },
      timings: { loadMs: Math.round(loadMs), planMs: Math.round(planMs), totalMs: Math.round(performance.now() - started) },
      paths: loaded.graph.count,
      bytes: plan.totalBytes,
      ...described,
      quota: plan.quota,
      deleted,
      orphans,
    };
  } finally {
    await lease?.release();
  }
}

/** The lease that makes a run the only one on its cache, renewed as the run goes. */
class RunLease {
  readonly #ctx: GcContext;
  readonly #name: string;
  readonly #holder: string;

  private constructor(ctx: GcContext, name: string, holder: string) {
    this.#ctx = ctx;
    this.#name = name;
    this.#holder = holder;
  }

  static async take(ctx: GcContext, cache: string): Promise<RunLease> {
    // A holder per run: two runs in one process exclude each other too.
    const lease = new RunLease(ctx, `gc/${cache}`, `${ctx.holder}/${randomBytes(4).toString('hex')}`);
    if (!(await ctx.index.acquireLease(lease.#name, lease.#holder, ctx.gcSettings.runLeaseMs))) {
      throw new Rejection('conflict', `garbage collection of cache '${cache}' is running already (here or on another replica); try again later`);
    }
    return lease;
  }

  async renew(): Promise<void> {
    if (!(await this.#ctx.index.acquireLease(this.#name, this.#holder, this.#ctx.gcSettings.runLeaseMs))) {
      throw new Error(`garbage collection lost its lease ${this.#name} (a batch took longer than its TTL); stopped`);
    }
  }

  async release(): Promise<void> {
    await this.#ctx.index.releaseLease(this.#name, this.#holder).catch(() => {});
  }
}

type Described = Pick<GcReport, 'kept' | 'freed'>;

async function describePlan(ctx: GcContext, cache: string, loaded: LoadedGraph, plan: GcPlan, list: boolean): Promise<Described> {
  const { graph, hashParts, pins } = loaded;
  const { fate, keptBy } = plan;
  const counts = new Map<number, number>();
  let oldestRecent: number | null = null;
  const oldestRoots: number[] = [];
  const referencedExamples: number[] = [];
  for (let p = 0; p < graph.count; p++) {
    const f = fate[p]!;
    counts.set(f, (counts.get(f) ?? 0) + 1);
    if (f === Fate.recent) {
      const at = graph.accessedAt[p]!;
      if (oldestRecent === null || at < oldestRecent) oldestRecent = at;
      // The least recently used roots are the instructive examples: the next to go.
      oldestRoots.push(p);
      oldestRoots.sort((a, b) => graph.accessedAt[a]! - graph.accessedAt[b]!);
      if (oldestRoots.length > EXAMPLES) oldestRoots.pop();
    } else if (f === Fate.unlimited && oldestRoots.length < EXAMPLES) {
      oldestRoots.push(p);
    } else if (f === Fate.referenced && referencedExamples.length < EXAMPLES) {
      referencedExamples.push(p);
    }
  }
  const count = (f: number) => counts.get(f) ?? 0;
  const freedOrder = plan.deletionOrder;
  const freedExamples = [...freedOrder.subarray(0, FREED_EXAMPLES)];
  const wanted = [...oldestRoots, ...referencedExamples, ...referencedExamples.map((p) => keptBy[p]!), ...freedExamples]
    .filter((p) => p >= 0)
    .map((p) => hashParts.at(p));
  const bases = await ctx.index.pathBases(cache, wanted);
  const storePath = (p: number) => {
    const hashPart = hashParts.at(p);
    return `${ctx.storeDir}/${bases.get(hashPart) ?? hashPart}`;
  };

  const freedHashParts = Array.from(freedOrder, (p) => hashParts.at(p));
  const closures = pinClosures(graph);
  const expiredPaths = count(Fate.expired);
  return {
    kept: {
      paths: graph.count - freedOrder.length,
      bytes: plan.keptBytes,
      pins: pins.map((pin, k) => ({
        name: pin.name,
        storePath: `${ctx.storeDir}/${pin.base}`,
        paths: closures?.[k]?.paths ?? null,
        bytes: closures?.[k]?.bytes ?? null,
      })),
      pinnedRoots: count(Fate.pinned),
      recentRoots: count(Fate.recent),
      oldestRecentAccess: oldestRecent,
      unlimitedRoots: count(Fate.unlimited),
      referenced: count(Fate.referenced),
      examples: [
        ...oldestRoots.map((p): KeptExample => ({
          storePath: storePath(p),
          reason: fate[p] === Fate.recent ? 'recent' : 'unlimited',
          accessedAt: graph.accessedAt[p]!,
        })),
        ...referencedExamples.map((p): KeptExample => ({
          storePath: storePath(p),
          reason: 'referenced',
          ...(keptBy[p]! >= 0 && { referencedBy: storePath(keptBy[p]!) }),
        })),
      ],
    },
    freed: {
      paths: freedOrder.length,
      bytes: plan.freedBytes,
      expired: { paths: expiredPaths, bytes: plan.expiredBytes },
      evicted: { paths: count(Fate.evicted), bytes: plan.freedBytes - plan.expiredBytes },
      examples: freedExamples.map((p) => ({
        storePath: storePath(p),
        reason: fate[p] === Fate.evicted ? 'evicted' : 'expired',
        accessedAt: graph.accessedAt[p]!,
      })),
      digest: digestOf([...freedHashParts]),
      ...(list && { list: await storePaths(ctx, cache, freedHashParts) }),
    },
  };
}

/** `<storeDir>/<base>` of these hash parts, sorted; a hash part alone for one gone since. */
async function storePaths(ctx: GcContext, cache: string, hashParts: readonly string[]): Promise<string[]> {
  const bases = await ctx.index.pathBases(cache, hashParts);
  return hashParts.map((h) => `${ctx.storeDir}/${bases.get(h) ?? h}`).sort();
}

async function deletePlanned(
  ctx: GcContext,
  cache: string,
  loaded: LoadedGraph,
  plan: GcPlan,
  startedAt: number,
  lease: RunLease,
  options: GcOptions,
): Promise<NonNullable<GcReport['deleted']>> {
  const { graph, hashParts } = loaded;
  const spared: Record<SpareReason, number> = { absent: 0, accessed: 0, pinned: 0, referenced: 0 };
  const deleted: DeletedPath[] = [];
  let stopped = false;
  const order = plan.deletionOrder;
  for (let i = 0; i < order.length; i += ctx.gcSettings.batchSize) {
    if (options.signal?.aborted) {
      stopped = true;
      break;
    }
    await lease.renew();
    // Accesses this process saw since the plan spare their paths.
    await ctx.accesses?.flush();
    const batch = Array.from(order.subarray(i, i + ctx.gcSettings.batchSize), (p) => ({
      hashPart: hashParts.at(p),
      accessedAt: graph.accessedAt[p]!,
    }));
    const result = await ctx.index.deletePaths(cache, batch);
    for (const s of result.spared) spared[s.reason]++;
    if (result.deleted.length > 0) {
      await removePathFiles(ctx, cache, result.deleted);
      deleted.push(...result.deleted);
    }
  }
  let nars = { count: 0, bytes: 0 };
  if (deleted.length > 0) {
    await sleep(ctx.gcSettings.narinfoVisibilityMs);
    // Only NARs recorded before the run began: one uploaded (or uploaded again) since is in flight.
    nars = await deleteNars(ctx, cache, [...new Set(deleted.map((d) => d.fileHash))], narRules(ctx, startedAt));
  }
  const hashPartsDeleted = deleted.map((d) => d.hashPart);
  return {
    paths: deleted.length,
    nars: nars.count,
    bytes: nars.bytes,
    digest: digestOf([...hashPartsDeleted]),
    ...(options.list && { list: deleted.map((d) => `${ctx.storeDir}/${d.base}`).sort() }),
    spared,
    stopped,
  };
}

function narRules(ctx: GcContext, createdBefore: number): NarClaimRules {
  const now = ctx.now();
  return { createdBefore, staleClaimBefore: now - ctx.gcSettings.staleClaimMs, at: now };
}

/** After their rows went: the narinfo and listing files, and a word to this process's caches. */
async function removePathFiles(ctx: GcContext, cache: string, deleted: readonly DeletedPath[]): Promise<void> {
  ctx.pathsDeleted?.(cache);
  await ctx.store.deleteMany(deleted.flatMap((d) => [narInfoKey(cache, d.hashPart), listingKey(cache, d.hashPart)]));
  // A path pushed again between its row's deletion and its file's: the index has its narinfo.
  const back = await ctx.index.presentPaths(cache, deleted.map((d) => d.hashPart));
  for (const hashPart of back) {
    const row = await ctx.index.getPath(cache, hashPart);
    if (row) await ctx.store.put(narInfoKey(cache, hashPart), row.narinfo);
  }
}

/** Claims, deletes the files of, and drops those of these NARs that no path uses and the rules allow. */
async function deleteNars(ctx: GcContext, cache: string, fileHashes: readonly string[], rules: NarClaimRules): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for (let i = 0; i < fileHashes.length; i += ctx.gcSettings.batchSize) {
    const claims = await ctx.index.claimNars(cache, fileHashes.slice(i, i + ctx.gcSettings.batchSize), rules);
    if (claims.length === 0) continue;
    await ctx.store.deleteMany(claims.map((c) => narKey(cache, c.url)));
    count += await ctx.index.dropClaimedNars(cache, claims.map((c) => c.fileHash));
    for (const c of claims) bytes += c.fileSize;
  }
  return { count, bytes };
}

/** A cache's narinfo or listing file, and its NAR files: what an orphan can be (verify.ts asks the same). */
export const NARINFO_FILE = /^[^/]+\/([0-9a-z]{32})\.(narinfo|ls)$/;
export const NAR_FILE = /^[^/]+\/nar\/([0-9a-z]{52})\.nar(\.[a-z0-9]+)?$/;

async function collectOrphans(
  ctx: GcContext,
  cache: string,
  dryRun: boolean,
  lease: RunLease | undefined,
  signal: AbortSignal | undefined,
): Promise<GcReport['orphans']> {
  const now = ctx.now();
  const grace = ctx.gcSettings.uploadGraceMs;
  const rules = narRules(ctx, now - grace);

  // NAR records no path uses: uploads that never got their narinfo, and NARs of paths deleted
  // since (by `larder path delete`, or a run that stopped before its NARs).
  let nars = 0;
  let narBytes = 0;
  for (let after = ''; ; ) {
    if (signal?.aborted) break;
    const page: NarClaim[] = await ctx.index.orphanNarsPage(cache, rules, after, ctx.gcSettings.batchSize);
    if (page.length === 0) break;
    if (dryRun) {
      nars += page.length;
      for (const nar of page) narBytes += nar.fileSize;
    } else {
      await lease?.renew();
      const done = await deleteNars(ctx, cache, page.map((nar) => nar.fileHash), rules);
      nars += done.count;
      narBytes += done.bytes;
    }
    after = page.at(-1)!.fileHash;
  }

  // Files with no record: a process died between writing a file and recording it.
  let files = 0;
  let pending: { key: string; hashPart?: string; fileHash?: string }[] = [];
  const settle = async () => {
    const pathParts = pending.flatMap((f) => (f.hashPart ? [f.hashPart] : []));
    const narParts = pending.flatMap((f) => (f.fileHash ? [f.fileHash] : []));
    const paths = pathParts.length > 0 ? await ctx.index.presentPaths(cache, pathParts) : new Set<string>();
    const narsPresent = narParts.length > 0 ? await ctx.index.presentNars(cache, narParts) : new Set<string>();
    const orphaned = pending.filter((f) => (f.hashPart ? !paths.has(f.hashPart) : !narsPresent.has(f.fileHash!)));
    if (!dryRun && orphaned.length > 0) await ctx.store.deleteMany(orphaned.map((f) => f.key));
    files += orphaned.length;
    pending = [];
  };
  for await (const entry of ctx.store.listEntries(cache)) {
    if (signal?.aborted) break;
    if (entry.modifiedAt > now - grace) continue;
    const info = NARINFO_FILE.exec(entry.key);
    const nar = info ? null : NAR_FILE.exec(entry.key);
    if (info) pending.push({ key: entry.key, hashPart: info[1]! });
    else if (nar) pending.push({ key: entry.key, fileHash: nar[1]! });
    else continue;
    if (pending.length >= ctx.gcSettings.batchSize) await settle();
  }
  if (pending.length > 0 && !signal?.aborted) await settle();

  const abandoned = signal?.aborted ? 0 : await ctx.store.sweepAbandoned(grace, dryRun);
  return { nars, narBytes, files, abandoned };
}

// ---- deleting one path on request ------------------------------------------------------------

export interface PathDeletionReport {
  readonly deleted: readonly string[];
  readonly nars: number;
  readonly bytes: number;
}

/** Names for a message: the first few store paths and how many more. */
function someOf(paths: readonly string[], limit = 5): string {
  const shown = paths.slice(0, limit).join(', ');
  return paths.length > limit ? `${shown} and ${paths.length - limit} more` : shown;
}

/**
 * Deletes one path of a cache, refusing when other paths refer to it unless `withDependents`,
 * which deletes those too (transitively). Refuses to delete a pinned path. Safe against
 * concurrent uploads like garbage collection: all or nothing, in one transaction.
 */
export async function deletePath(
  ctx: GcContext,
  cache: string,
  hashPart: string,
  options: { withDependents?: boolean } = {},
): Promise<PathDeletionReport> {
  const startedAt = ctx.now();
  const target = await ctx.index.getPath(cache, hashPart);
  if (!target) throw new Rejection('not-found', `${hashPart} is not in cache '${cache}'`);
  const doomed = new Set([hashPart]);
  for (let frontier = [hashPart]; frontier.length > 0; ) {
    const next: string[] = [];
    for (const ref of await ctx.index.referrers(cache, frontier)) {
      if (!doomed.has(ref.hashPart)) {
        doomed.add(ref.hashPart);
        next.push(ref.hashPart);
      }
    }
    frontier = next;
  }
  const bases = await ctx.index.pathBases(cache, [...doomed]);
  const named = (h: string) => `${ctx.storeDir}/${bases.get(h) ?? h}`;
  const dependents = [...doomed].filter((h) => h !== hashPart);
  if (dependents.length > 0 && !options.withDependents) {
    throw new Rejection(
      'conflict',
      `${named(hashPart)} is referred to by ${dependents.length} path${dependents.length > 1 ? 's' : ''} in cache '${cache}': ` +
        `${someOf(dependents.map(named).sort())}; pass --with-dependents (withDependents) to delete them too`,
    );
  }
  const pinned = (await ctx.index.listPins(cache)).filter((pin) => doomed.has(pin.hashPart));
  if (pinned.length > 0) {
    throw new Rejection('conflict', `pinned, so not deleted: ${someOf(pinned.map((p) => `${named(p.hashPart)} (pin '${p.name}')`))}; delete the pin first`);
  }
  const result = await ctx.index.deletePaths(cache, [...doomed].map((h) => ({ hashPart: h })), { allOrNothing: true });
  if (result.spared.length > 0) {
    const why = result.spared.map((s) =>
      s.reason === 'referenced' ? `${named(s.hashPart)} is now referred to by ${named(s.by ?? '?')}` : `${named(s.hashPart)} is ${s.reason}`,
    );
    throw new Rejection('conflict', `the cache changed meanwhile, nothing deleted: ${someOf(why)}`);
  }
  await removePathFiles(ctx, cache, result.deleted);
  await sleep(ctx.gcSettings.narinfoVisibilityMs);
  const nars = await deleteNars(ctx, cache, [...new Set(result.deleted.map((d) => d.fileHash))], narRules(ctx, startedAt));
  return { deleted: result.deleted.map((d) => `${ctx.storeDir}/${d.base}`).sort(), nars: nars.count, bytes: nars.bytes };
}

// ---- the schedule --------------------------------------------------------------------------------

/**
 * Runs garbage collection of every cache every `intervalMs`, on one replica at a time: the
 * replica holding the lease `gc-schedule` (taken for one interval and not given back, so that
 * another replica's timer finds it held) runs it; when that replica dies, another takes over
 * after an interval.
 */
export class GcScheduler {
  readonly #ctx: GcContext;
  readonly #intervalMs: number;
  readonly #log: (line: string) => void;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(ctx: GcContext, intervalMs: number, log: (line: string) => void) {
    this.#ctx = ctx;
    this.#intervalMs = intervalMs;
    this.#log = log;
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (!this.#running) this.#running = this.runOnce().finally(() => (this.#running = undefined));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** One scheduled round, if this replica gets the schedule lease. */
  async runOnce(): Promise<void> {
    try {
      if (!(await this.#ctx.index.acquireLease('gc-schedule', this.#ctx.holder, this.#intervalMs))) return;
      for (const cache of await this.#ctx.index.listCaches()) {
        if (this.#abort.signal.aborted) return;
        try {
          const report = await runGc(this.#ctx, cache.name, { signal: this.#abort.signal });
          const line = summaryLine(report);
          if (line) this.#log(line);
        } catch (error) {
          this.#log(`gc ${cache.name}: ${(error as Error).message}`);
        }
      }
    } catch (error) {
      this.#log(`gc: ${(error as Error).message}`);
    }
  }

  /** Stops the timer and a run in progress (after its current batch). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#abort.abort();
    await this.#running;
  }
}

/** One line about a real run that changed something; undefined when it did nothing. */
export function summaryLine(report: GcReport): string | undefined {
  const d = report.deleted;
  const o = report.orphans;
  if ((!d || (d.paths === 0 && d.nars === 0)) && o.nars === 0 && o.files === 0 && o.abandoned === 0) return undefined;
  const parts = [`deleted ${d?.paths ?? 0} paths and ${d?.nars ?? 0} NARs (${formatBytes(d?.bytes ?? 0)})`];
  if (o.nars + o.files + o.abandoned > 0) parts.push(`orphans: ${o.nars} NARs (${formatBytes(o.narBytes)}), ${o.files} files, ${o.abandoned} abandoned uploads`);
  return `gc ${report.cache}: ${parts.join('; ')} in ${(report.timings.totalMs / 1000).toFixed(1)} s`;
}


