// Access times without writes on the read hot path (architecture invariant 7):
// a narinfo or NAR download only notes the access in memory; the notes are
// written every few seconds (and on shutdown) as one UPDATE per cache, kind and
// second: `last_access = t where it is older`. Replicas and worker processes
// each flush their own notes, and the result is the same in any order.

import type { CacheIndex } from '../index/cache-index.ts';

export interface AccessLogOptions {
  readonly now?: () => number;
  /** Notes kept before a flush is started early; default 100000. */
  readonly maxEntries?: number;
  /** Called when a flush fails (the notes are kept for the next one). */
  readonly onError?: (error: unknown) => void;
}

type Kind = 'path' | 'nar';

/** Access times are written to the second: one UPDATE per second of notes, not per path. */
const RESOLUTION_MS = 1000;

export class AccessLog {
  readonly #index: CacheIndex;
  readonly #now: () => number;
  readonly #maxEntries: number;
  readonly #onError: (error: unknown) => void;
  /** `<cache>\n<kind>\n<hash>` → latest access, ms. */
  #entries = new Map<string, number>();
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;

  constructor(index: CacheIndex, options: AccessLogOptions = {}) {
    this.#index = index;
    this.#now = options.now ?? Date.now;
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#onError = options.onError ?? (() => {});
  }

  /** A narinfo was read, or an upload found the path present. */
  path(cache: string, hashPart: string): void {
    this.#note(`${cache}\npath\n${hashPart}`, this.#now());
  }

  /** A NAR was downloaded: an access of the paths that use it. */
  nar(cache: string, fileHash: string): void {
    this.#note(`${cache}\nnar\n${fileHash}`, this.#now());
  }

  /** Notes not yet written. */
  get pending(): number {
    return this.#entries.size;
  }

  #note(key: string, at: number): void {
    const previous = this.#entries.get(key);
    if (previous === undefined || previous < at) this.#entries.set(key, at);
    if (this.#entries.size >= this.#maxEntries) void this.flush().catch(this.#onError);
  }

  /** Writes every note taken so far; resolves once they are in the index (or failed, and kept). */
  flush(): Promise<void> {
    const run = this.#flushing.catch(() => {}).then(() => this.#write());
    this.#flushing = run;
    return run;
  }

  async #write(): Promise<void> {
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

  /** Flushes every `intervalMs` until stopped. */
  start(intervalMs: number): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.flush().catch(this.#onError), intervalMs);
    this.#timer.unref();
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
