// The numbers the overview and cache pages show, read from the index with a
// bound on every query. A cache's size needs a pass over an index entry per
// path (tens of ms for 100,000 paths), so pages show the last one measured
// and a newer one is measured in the background once that is 30 s old; before
// the first, today's size sample (services/access-log.ts takes one every 10
// minutes) stands in. The rest is cheap: per-day rows, LIMITed lists on indexes.

import type { CacheIndex, CacheRecord, CacheTotals, PathSummary, UsageDay } from '../index/cache-index.ts';
import { dayOf } from '../services/access-log.ts';
import { DAY_MS, usageSince } from './growth.ts';

/** How far back the charts go. */
export const HISTORY_DAYS = 90;
/** The window of the hit rate and download counts. */
export const RECENT_DAYS = 7;

export interface CacheSummary {
  readonly cache: CacheRecord;
  readonly totals: CacheTotals;
  /** Days with usage or a size sample, oldest first, over the last HISTORY_DAYS. */
  readonly history: readonly UsageDay[];
  /** Over the last RECENT_DAYS (today included). */
  readonly recent: { readonly hits: number; readonly misses: number; readonly downloads: number };
  /** The newest path's creation, null for an empty cache. */
  readonly lastPush: number | null;
}

/** How old a measured size may be before a page asks for a new one (and shows the old one meanwhile). */
const TOTALS_FRESH_MS = 30_000;

interface Measured {
  value: CacheTotals;
  /** When it was measured; 0 for a size sample standing in. */
  at: number;
  refreshing: boolean;
}

export class CacheStats {
  readonly #index: CacheIndex;
  readonly #now: () => number;
  readonly #totals = new Map<string, Measured>();

  constructor(index: CacheIndex, now: () => number = Date.now) {
    this.#index = index;
    this.#now = now;
  }

  today(): number {
    return dayOf(this.#now());
  }

  /** The cache's size: measured now the first time (unless `sample` stands in), else the last measured. */
  async totals(cache: string, sample?: CacheTotals): Promise<CacheTotals> {
    const known = this.#totals.get(cache) ?? (sample && this.#remember(cache, sample, 0));
    if (!known) return this.#remember(cache, await this.#index.cacheTotals(cache), Date.now()).value;
    if (Date.now() - known.at > TOTALS_FRESH_MS && !known.refreshing) {
      known.refreshing = true;
      this.#index.cacheTotals(cache).then(
        (value) => void this.#remember(cache, value, Date.now()),
        () => void (known.refreshing = false),
      );
    }
    return known.value;
  }

  #remember(cache: string, value: CacheTotals, at: number): Measured {
    const measured = { value, at, refreshing: false };
    this.#totals.set(cache, measured);
    return measured;
  }

  async summary(cache: CacheRecord): Promise<CacheSummary> {
    const today = this.today();
    const [history, newest] = await Promise.all([
      this.#index.usageHistory(cache.name, today - (HISTORY_DAYS - 1) * DAY_MS, HISTORY_DAYS),
      this.#index.recentPaths(cache.name, 1),
    ]);
    const todaysSample = history.at(-1)?.day === today ? history.at(-1)!.totals : null;
    const totals = await this.totals(cache.name, todaysSample ?? undefined);
    return {
      cache,
      totals,
      history,
      recent: usageSince(history, today - (RECENT_DAYS - 1) * DAY_MS),
      lastPush: newest[0]?.createdAt ?? null,
    };
  }

  recentPaths(cache: string, limit: number): Promise<PathSummary[]> {
    return this.#index.recentPaths(cache, limit);
  }

  topPaths(cache: string, limit: number): Promise<PathSummary[]> {
    return this.#index.topDownloadedPaths(cache, limit);
  }
}
