// Access times and usage counts without writes on the read hot path
// (architecture invariant 7): a narinfo or NAR download only notes the access
// in memory; the notes are written every few seconds (and on shutdown).
//
// Access times: one UPDATE per cache, kind and second, `last_access = t where it
// is older`; replicas and worker processes each flush their own notes, and the
// result is the same in any order. Counts (narinfo hits and misses, NAR
// downloads per day and per path, for the dashboard): added in one transaction
// per cache and day, so a failed batch is kept whole for the next flush and
// never added twice. While the timer runs, each cache's size is also sampled
// now and then for the dashboard's growth chart.

import type { CacheIndex } from '../index/cache-index.ts';

export interface AccessLogOptions {
  readonly now?: () => number;
  /** Notes kept before a flush is started early; default 100000. */
  readonly maxEntries?: number;
  /** Called when a flush fails (the notes are kept for the next one). */
  readonly onError?: (error: unknown) => void;
  /** How often the timer samples every cache's size; default 10 minutes. */
  readonly sampleEveryMs?: number;
}

type Kind = 'path' | 'nar';

/** Access times are written to the second: one UPDATE per second of notes, not per path. */
const RESOLUTION_MS = 1000;
const DAY_MS = 86_400_000;

/** The UTC midnight before `ms`: the day usage is counted under. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

interface Counts {
  readonly cache: string;
  readonly day: number;
  narinfoHits: number;
  narinfoMisses: number;
  narDownloads: number;
  readonly downloadsByNar: Map<string, number>;
}

export class AccessLog {
  readonly #index: CacheIndex;
  readonly #now: () => number;
  readonly #maxEntries: number;
  readonly #onError: (error: unknown) => void;
  readonly #sampleEveryMs: number;
  /** `<cache>\n<kind>\n<hash>` → latest access, ms. */
  #entries = new Map<string, number>();
  /** `<cache>\n<day>` → what was counted. */
  #counts = new Map<string, Counts>();
  /** Distinct NARs counted: with #entries, what bounds the memory held. */
  #countedNars = 0;
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #lastSample = -Infinity;

  constructor(index: CacheIndex, options: AccessLogOptions = {}) {
    this.#index = index;
    this.#now = options.now ?? Date.now;
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#onError = options.onError ?? (() => {});
    this.#sampleEveryMs = options.sampleEveryMs ?? 10 * 60_000;
  }

  /** A narinfo was read, or an upload found the path present. */
  path(cache: string, hashPart: string): void {
    this.#note(`${cache}\npath\n${hashPart}`, this.#now());
  }

  /** A NAR was downloaded: an access of the paths that use it. */
  nar(cache: string, fileHash: string): void {
    this.#note(`${cache}\nnar\n${fileHash}`, this.#now());
  }

  /** A client asked for a narinfo the cache has: an access, and a hit. */
  narinfoServed(cache: string, hashPart: string): void {
    this.path(cache, hashPart);
    this.#count(cache).narinfoHits++;
  }

  /** A client asked for a narinfo the cache lacks: a miss. */
  narinfoMissing(cache: string): void {
    this.#count(cache).narinfoMisses++;
    this.#flushIfFull();
  }

  /** A NAR download completed: an access, and a download of the paths that use it. */
  narDownloaded(cache: string, fileHash: string): void {
    this.nar(cache, fileHash);
    const counts = this.#count(cache);
    counts.narDownloads++;
    const previous = counts.downloadsByNar.get(fileHash);
    if (previous === undefined) this.#countedNars++;
    counts.downloadsByNar.set(fileHash, (previous ?? 0) + 1);
    this.#flushIfFull();
  }

  /** Notes not yet written. */
  get pending(): number {
    return this.#entries.size + this.#counts.size;
  }

  #count(cache: string): Counts {
    const day = dayOf(this.#now());
    const key = `${cache}\n${day}`;
    let counts = this.#counts.get(key);
    if (!counts) {
      counts = { cache, day, narinfoHits: 0, narinfoMisses: 0, narDownloads: 0, downloadsByNar: new Map() };
      this.#counts.set(key, counts);
    }
    return counts;
  }

  #note(key: string, at: number): void {
    const previous = this.#entries.get(key);
    if (previous === undefined || previous < at) this.#entries.set(key, at);
    this.#flushIfFull();
  }

  #flushIfFull(): void {
    if (this.#entries.size + this.#countedNars >= this.#maxEntries) void this.flush().catch(this.#onError);
  }

  /** Writes every note taken so far; resolves once they are in the index (or failed, and kept). */
  flush(): Promise<void> {
    const run = this.#flushing.catch(() => {}).then(() => this.#write());
    this.#flushing = run;
    return run;
  }

  async #write(): Promise<void> {
    // Counts first, each batch on its own: one that fails goes back whole, the others are written.
    const counted = this.#counts;
    this.#counts = new Map();
    this.#countedNars = 0;
    let countsFailure: unknown;
    for (const counts of counted.values()) {
      try {
        await this.#index.recordUsage(counts.cache, counts);
      } catch (error) {
        countsFailure ??= error;
        this.#putBack(counts);
      }
    }
    await this.#writeAccessTimes();
    if (countsFailure !== undefined) throw countsFailure;
  }

  /** A batch that was not written goes back, added to what was counted since. */
  #putBack(counts: Counts): void {
    const key = `${counts.cache}\n${counts.day}`;
    const current = this.#counts.get(key);
    if (!current) {
      this.#counts.set(key, counts);
      this.#countedNars += counts.downloadsByNar.size;
      return;
    }
    current.narinfoHits += counts.narinfoHits;
    current.narinfoMisses += counts.narinfoMisses;
    current.narDownloads += counts.narDownloads;
    for (const [fileHash, n] of counts.downloadsByNar) {
      const previous = current.downloadsByNar.get(fileHash);
      if (previous === undefined) this.#countedNars++;
      current.downloadsByNar.set(fileHash, (previous ?? 0) + n);
    }
  }

  async #writeAccessTimes(): Promise<void> {
    if (this.#entries.size === 0) return;
    const taken = this.#entries;
    this.#entries = new Map();
    const groups = new Map<string, { cache: string; kind: Kind; at: number; keys: string[] }>();
    for (const [key, at] of taken) {
      const [cache, kind, hash] = key.split('\n') as [string, Kind, string];
      const second = Math.floor(at / RESOLUTION_MS) * RESOLUTION_MS;
      const group = `${cache}\n${kind}\n${second}`;
      const entry = groups.get(group);
      if (entry) entry.keys.push(hash);
      else groups.set(group, { cache, kind, at: second, keys: [hash] });
    }
    try {
      for (const { cache, kind, at, keys } of groups.values()) {
        if (kind === 'path') await this.#index.touchPaths(cache, keys, at);
        else await this.#index.touchPathsByNar(cache, keys, at);
      }
    } catch (error) {
      // Kept for the next flush (a later note of the same key wins); writing one twice is harmless.
      for (const [key, at] of taken) {
        const newer = this.#entries.get(key);
        if (newer === undefined || newer < at) this.#entries.set(key, at);
      }
      throw error;
    }
  }

  /**
   * Records every cache's size for today (what the dashboard's growth chart draws). Each
   * process samples on its own timer; samples of one day replace each other, so replicas agree.
   */
  async sampleSizes(): Promise<void> {
    const at = this.#now();
    this.#lastSample = at;
    for (const cache of await this.#index.listCaches()) {
      await this.#index.recordTotalsSample(cache.name, dayOf(at), await this.#index.cacheTotals(cache.name));
    }
  }

  async #tick(): Promise<void> {
    await this.flush();
    if (this.#now() - this.#lastSample >= this.#sampleEveryMs) await this.sampleSizes();
  }

  /** Flushes every `intervalMs` (and samples sizes every `sampleEveryMs`) until stopped. */
  start(intervalMs: number): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#tick().catch(this.#onError), intervalMs);
    this.#timer.unref();
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
