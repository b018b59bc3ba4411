// What each cache holds (paths, NAR files, their bytes), read from the index
// when Prometheus scrapes. One read serves every scrape for a few seconds, so
// frequent or concurrent scrapes (several Prometheus servers, several workers
// asking) cost the index one query; the read writes nothing.

import { Gauge, type Registry } from 'prom-client';
import type { CacheIndex, CacheStats } from '../index/cache-index.ts';

/** How long one read of the index answers scrapes. */
export const CACHE_STATS_MAX_AGE_MS = 10_000;

export class CacheStatsReader {
  readonly #index: Pick<CacheIndex, 'cacheStats'>;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #last: { readonly at: number; readonly stats: CacheStats[] } | undefined;
  #reading: Promise<CacheStats[]> | undefined;

  constructor(index: Pick<CacheIndex, 'cacheStats'>, maxAgeMs = CACHE_STATS_MAX_AGE_MS, now: () => number = Date.now) {
    this.#index = index;
    this.#maxAgeMs = maxAgeMs;
    this.#now = now;
  }

  /** The counts, at most `maxAgeMs` old; concurrent callers share one query. */
  read(): Promise<CacheStats[]> {
    if (this.#last && this.#now() - this.#last.at < this.#maxAgeMs) return Promise.resolve(this.#last.stats);
    this.#reading ??= this.#index
      .cacheStats()
      .then((stats) => {
        this.#last = { at: this.#now(), stats };
        return stats;
      })
      .finally(() => (this.#reading = undefined));
    return this.#reading;
  }
}

/** Registers the per-cache gauges; when the index cannot answer, a scrape shows none of them and `larder_cache_stats_up` 0. */
export function registerCacheStats(registry: Registry, reader: CacheStatsReader): void {
  const registers = [registry];
  // A registry collects its metrics concurrently: each gauge asks the reader, which makes it one query.
  const perCache = (name: string, help: string, value: (stats: CacheStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['cache'],
      registers,
      async collect() {
        this.reset();
        const stats = await reader.read().catch(() => []);
        for (const s of stats) this.set({ cache: s.cache }, value(s));
      },
    });
  perCache('larder_cache_paths', 'Store paths each cache serves', (s) => s.paths);
  perCache('larder_cache_nar_files', 'NAR files each cache stores (uploads waiting for their narinfo included)', (s) => s.nars);
  perCache('larder_cache_nar_bytes', 'Bytes of the NAR files each cache stores (compressed, as stored)', (s) => s.narBytes);
  new Gauge({
    name: 'larder_cache_stats_up',
    help: 'Whether the index told what the caches hold at this scrape (1) or could not answer (0)',
    registers,
    async collect() {
      this.set(await reader.read().then(() => 1, () => 0));
    },
  });
}
