// `/ui/caches/<cache>`: one cache's numbers, how to use it, a search box,
// growth, lookups, its recent pushes and most downloaded paths.

import type { PathSummary } from '../../index/cache-index.ts';
import { formatDurationValue } from '../../services/units.ts';
import { RECENT_DAYS, type CacheSummary } from '../cache-stats.ts';
import type { BarPoint, ChartPoint } from '../chart.ts';
import { formatAge, formatBytes, formatCount, formatHitRate } from '../display.ts';
import { html } from '../html.ts';
import { renderPage, type Flash, type Viewer } from '../layout.ts';
import { cacheUrl, searchUrl } from '../routes.ts';
import { cacheCrumbs, cacheHeading, cacheTabs, pathTable } from './cache-parts.ts';
import { usageCharts } from './usage-charts.ts';

export interface CacheView {
  readonly viewer: Viewer | undefined;
  readonly flash?: Flash | undefined;
  readonly now: number;
  readonly summary: CacheSummary;
  readonly canAdmin: boolean;
  /** The cache's URL as clients reach it. */
  readonly substituterUrl: string;
  readonly publicKeys: readonly string[];
  readonly growth: readonly ChartPoint[];
  readonly lookups: readonly BarPoint[];
  readonly recent: readonly PathSummary[];
  readonly top: readonly PathSummary[];
}

export function renderCache(view: CacheView): string {
  const { summary, now } = view;
  const { cache, totals, recent } = summary;
  const name = cache.name;
  const policy = [
    cache.retentionMs === null ? 'no retention limit' : `keeps paths used within ${formatDurationValue(cache.retentionMs)}`,
    cache.maxSize === null ? 'no size limit' : `at most ${formatBytes(cache.maxSize)}`,
  ].join(', ');
  const body = html`${cacheHeading(cache)}
${cacheTabs(name, 'overview', view.canAdmin)}
<ul class="stats">
<li><b>${formatCount(totals.paths)}</b><span>store paths</span></li>
<li><b>${formatBytes(totals.fileBytes)}</b><span>stored (${formatBytes(totals.narBytes)} unpacked)</span></li>
<li><b>${formatHitRate(recent.hits, recent.misses)}</b><span>hit rate, ${RECENT_DAYS} days (${formatCount(recent.hits)} of ${formatCount(recent.hits + recent.misses)})</span></li>
<li><b>${formatCount(recent.downloads)}</b><span>NAR downloads, ${RECENT_DAYS} days</span></li>
<li><b>${summary.lastPush === null ? '–' : formatAge(summary.lastPush, now)}</b><span>last push</span></li>
</ul>
<form class="card" method="get" action="${searchUrl(name)}" role="search">
<label>Search store paths by name or hash<input type="search" name="q" placeholder="hello, or a hash such as 0c7a1f…" required maxlength="200"></label>
<button type="submit">Search</button>
</form>
${usageCharts(view.growth, view.lookups)}
<div class="grid">
<section><h2>Recent pushes</h2>${pathTable(view.recent.map((path) => ({ cache: name, path })), ['size', 'pushed'], now, 'Nothing pushed yet.')}</section>
<section><h2>Top paths by downloads</h2>${pathTable(view.top.map((path) => ({ cache: name, path })), ['size', 'downloads'], now, 'No downloads counted yet.')}</section>
</div>
<section class="card"><h2>Use this cache</h2>
<p class="muted">Garbage collection: ${policy}. nix.conf:</p>
<pre>extra-substituters = ${view.substituterUrl}
extra-trusted-public-keys = ${view.publicKeys.join(' ')}</pre>
${!cache.public && html`<p class="muted">A private cache also needs a read token in a netrc file (<code>larder use ${view.substituterUrl} --token …</code> writes both).</p>`}
</section>`;
  return renderPage({ title: name, crumbs: cacheCrumbs(name), viewer: view.viewer, flash: view.flash, here: cacheUrl(name) }, body);
}
