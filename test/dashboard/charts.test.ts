// The growth and lookup series, and the SVG drawn from them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lineChart, stackedBars } from '../../src/dashboard/chart.ts';
import { DAY_MS, lookupBars, sizeSeries, usageSince } from '../../src/dashboard/growth.ts';
import type { UsageDay } from '../../src/index/cache-index.ts';

const D = 19_000 * DAY_MS;

function day(offset: number, fileBytes: number | null, counts: Partial<Pick<UsageDay, 'narinfoHits' | 'narinfoMisses' | 'narDownloads'>> = {}): UsageDay {
  return {
    day: D + offset * DAY_MS,
    narinfoHits: counts.narinfoHits ?? 0,
    narinfoMisses: counts.narinfoMisses ?? 0,
    narDownloads: counts.narDownloads ?? 0,
    totals: fileBytes === null ? null : { paths: 1, fileBytes, narBytes: fileBytes * 2 },
  };
}

test('size series: samples carried over days without one, caches summed, today from the live totals', () => {
  const a = { history: [day(0, 100), day(2, 150), day(3, null, { narinfoHits: 5 })], live: { paths: 3, fileBytes: 170, narBytes: 0 } };
  const b = { history: [day(1, 1000)] };
  assert.deepEqual(
    sizeSeries([a, b], D + 4 * DAY_MS).map((p) => [(p.day - D) / DAY_MS, p.value]),
    [
      [0, 100],
      [1, 1100],
      [2, 1150],
      [3, 1150],
      [4, 1170],
    ],
  );
  assert.deepEqual(sizeSeries([{ history: [] }], D), [], 'no samples, no live numbers: nothing to draw');
  assert.deepEqual(sizeSeries([{ history: [], live: { paths: 1, fileBytes: 9, narBytes: 9 } }], D), [{ day: D, value: 9 }]);
  assert.deepEqual(sizeSeries([a], D + 4 * DAY_MS, (t) => t.narBytes).map((p) => p.value), [200, 200, 300, 300, 0]);
});

test('lookup bars cover the span day by day, zero where nothing was counted; sums since a day', () => {
  const history = [day(-5, null, { narinfoHits: 99 }), day(1, null, { narinfoHits: 3, narinfoMisses: 1, narDownloads: 2 }), day(2, 10, { narinfoMisses: 4, narDownloads: 1 })];
  const bars = lookupBars([{ history }, { history: [day(2, null, { narinfoHits: 1 })] }], D + 2 * DAY_MS, 3);
  assert.deepEqual(bars, [
    { day: D, values: [0, 0] },
    { day: D + DAY_MS, values: [3, 1] },
    { day: D + 2 * DAY_MS, values: [1, 4] },
  ]);
  assert.deepEqual(usageSince(history, D + DAY_MS), { hits: 3, misses: 5, downloads: 3 });
});

test('a line chart: one point per day with its value in a tooltip, the maximum on the axis; a note when empty', () => {
  const svg = lineChart(
    [
      { day: D, value: 10 },
      { day: D + DAY_MS, value: 40 },
      { day: D + 2 * DAY_MS, value: 20 },
    ],
    { label: 'Stored <size>', format: (v) => `${v} B` },
  ).toString();
  assert.equal(svg.match(/<circle /g)?.length, 3);
  assert.match(svg, /<title>2022-01-09: 40 B<\/title>/);
  assert.match(svg, />40 B<\/text>/);
  assert.match(svg, /aria-label="Stored &lt;size&gt;"/);
  assert.match(svg, /class="chart-area"/);
  // The highest point touches the top of the plot, the lowest stays above the baseline.
  const ys = [...svg.matchAll(/<circle [^>]*cy="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(Math.min(...ys), ys[1]);
  assert.match(lineChart([], { label: 'Stored size', format: String }).toString(), /Stored size: no data yet/);
  assert.equal(lineChart([{ day: D, value: 5 }], { label: 'x', format: String }).toString().match(/<circle /g)?.length, 1);
});

test('stacked bars: one group per day, heights in proportion, nothing drawn for zero', () => {
  const svg = stackedBars(
    [
      { day: D, values: [3, 1] },
      { day: D + DAY_MS, values: [0, 0] },
    ],
    [
      { name: 'hits', className: 'bar-hit' },
      { name: 'misses', className: 'bar-miss' },
    ],
    { label: 'Lookups', format: String },
  ).toString();
  assert.equal(svg.match(/<g>/g)?.length, 2);
  assert.equal(svg.match(/<rect /g)?.length, 2);
  const hit = Number(/class="bar-hit"[^>]*height="([\d.]+)"/.exec(svg)![1]);
  const miss = Number(/class="bar-miss"[^>]*height="([\d.]+)"/.exec(svg)![1]);
  assert.ok(Math.abs(hit / miss - 3) < 0.01, `${hit} / ${miss}`);
  assert.match(svg, /<title>2022-01-09: 0 hits, 0 misses<\/title>/);
});
