// The day-by-day series the charts draw, from the usage rows of the index
// (services/access-log.ts counts usage and samples sizes): pure, so that gaps,
// several caches and today's live numbers are tested without a server.

import type { CacheTotals, UsageDay } from '../index/cache-index.ts';
import type { BarPoint, ChartPoint } from './chart.ts';

export const DAY_MS = 86_400_000;

/** Days from `from` to `to` (UTC midnights), both included. */
function daysBetween(from: number, to: number): number[] {
  const days: number[] = [];
  for (let day = from; day <= to; day += DAY_MS) days.push(day);
  return days;
}

/**
 * Stored bytes per day summed over caches: each cache's last sample carried forward over days
 * without one (a cache counts 0 before its first sample), and today's value replaced by the live
 * totals when given. Starts at the first day any cache has a sample, ends today.
 */
export function sizeSeries(
  caches: readonly { readonly history: readonly UsageDay[]; readonly live?: CacheTotals }[],
  today: number,
  pick: (totals: CacheTotals) => number = (t) => t.fileBytes,
): ChartPoint[] {
  const sampled = caches.flatMap((c) => c.history.filter((d) => d.totals !== null).map((d) => d.day));
  if (caches.some((c) => c.live)) sampled.push(today);
  if (sampled.length === 0) return [];
  const days = daysBetween(Math.min(...sampled), today);
  const sums = new Array<number>(days.length).fill(0);
  for (const cache of caches) {
    const samples = new Map(cache.history.filter((d) => d.totals !== null).map((d) => [d.day, pick(d.totals!)]));
    let carried = 0;
    days.forEach((day, i) => {
      carried = samples.get(day) ?? carried;
      sums[i]! += day === today && cache.live ? pick(cache.live) : carried;
    });
  }
  return days.map((day, i) => ({ day, value: sums[i]! }));
}

/** Narinfo hits and misses per day over the last `span` days (today included), zero where nothing was counted. */
export function lookupBars(caches: readonly { readonly history: readonly UsageDay[] }[], today: number, span: number): BarPoint[] {
  const days = daysBetween(today - (span - 1) * DAY_MS, today);
  const index = new Map(days.map((day, i) => [day, i]));
  const hits = new Array<number>(days.length).fill(0);
  const misses = new Array<number>(days.length).fill(0);
  for (const cache of caches) {
    for (const d of cache.history) {
      const i = index.get(d.day);
      if (i === undefined) continue;
      hits[i]! += d.narinfoHits;
      misses[i]! += d.narinfoMisses;
    }
  }
  return days.map((day, i) => ({ day, values: [hits[i]!, misses[i]!] }));
}

/** Hits, misses and downloads summed over the days from `since` on. */
export function usageSince(history: readonly UsageDay[], since: number): { hits: number; misses: number; downloads: number } {
  let hits = 0;
  let misses = 0;
  let downloads = 0;
  for (const d of history) {
    if (d.day < since) continue;
    hits += d.narinfoHits;
    misses += d.narinfoMisses;
    downloads += d.narDownloads;
  }
  return { hits, misses, downloads };
}
