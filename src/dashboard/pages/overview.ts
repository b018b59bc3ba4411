// `/`: the caches the visitor can see (public ones without signing in), with
// their size, hit rate and downloads, growth over time, recent pushes and the
// most downloaded paths across them.

import type { PathSummary } from '../../index/cache-index.ts';
import type { CacheSummary } from '../cache-stats.ts';
import { RECENT_DAYS } from '../cache-stats.ts';
import type { BarPoint, ChartPoint } from '../chart.ts';
import { formatAge, formatBytes, formatCount, formatHitRate } from '../display.ts';
import { html } from '../html.ts';
import { renderPage, type Flash, type Viewer } from '../layout.ts';
import { cacheUrl, loginUrl } from '../routes.ts';
import { pathTable } from './cache-parts.ts';
import { usageCharts } from './usage-charts.ts';

export interface OverviewView {
  readonly viewer: Viewer | undefined;
  readonly flash?: Flash | undefined;
  readonly now: number;
  readonly caches: readonly CacheSummary[];
  /** Visible caches left out of this page (over its limit). */
  readonly more: number;
  readonly growth: readonly ChartPoint[];
  readonly lookups: readonly BarPoint[];
  readonly recent: readonly { cache: string; path: PathSummary }[];
  readonly top: readonly { cache: string; path: PathSummary }[];
}

export function renderOverview(view: OverviewView): string {
  const { caches, now } = view;
  const sum = (f: (c: CacheSummary) => number) => caches.reduce((total, c) => total + f(c), 0);
  const hits = sum((c) => c.recent.hits);
  const misses = sum((c) => c.recent.misses);
  const body = html`<h1>Caches</h1>
${!view.viewer && html`<p class="muted">Showing public caches. <a href="${loginUrl('/')}">Sign in</a> with a token to see the private caches it can read.</p>`}
<ul class="stats">
<li><b>${formatCount(caches.length + view.more)}</b><span>caches</span></li>
<li><b>${formatCount(sum((c) => c.totals.paths))}</b><span>store paths</span></li>
<li><b>${formatBytes(sum((c) => c.totals.fileBytes))}</b><span>stored (${formatBytes(sum((c) => c.totals.narBytes))} unpacked)</span></li>
<li><b>${formatHitRate(hits, misses)}</b><span>narinfo hit rate, ${RECENT_DAYS} days</span></li>
<li><b>${formatCount(sum((c) => c.recent.downloads))}</b><span>NAR downloads, ${RECENT_DAYS} days</span></li>
</ul>
${
  caches.length === 0
    ? html`<p class="card">No cache to show${view.viewer ? ' for this token' : ''}.</p>`
    : html`<table class="caches">
<thead><tr><th>Cache</th><th class="num">Paths</th><th class="num">Size</th><th class="num">Hit rate (${RECENT_DAYS} d)</th><th class="num">Downloads (${RECENT_DAYS} d)</th><th class="num">Last push</th></tr></thead>
<tbody>${caches.map(
        (c) => html`<tr><td><a href="${cacheUrl(c.cache.name)}">${c.cache.name}</a> <span class="badge ${c.cache.public ? 'public' : ''}">${c.cache.public ? 'public' : 'private'}</span></td>
<td class="num">${formatCount(c.totals.paths)}</td><td class="num">${formatBytes(c.totals.fileBytes)}</td>
<td class="num">${formatHitRate(c.recent.hits, c.recent.misses)}</td><td class="num">${formatCount(c.recent.downloads)}</td>
<td class="num">${c.lastPush === null ? '–' : formatAge(c.lastPush, now)}</td></tr>`,
      )}</tbody>
</table>${view.more > 0 && html`<p class="muted">and ${formatCount(view.more)} more caches.</p>`}`
}
${usageCharts(view.growth, view.lookups)}
<div class="grid">
<section><h2>Recent pushes</h2>${pathTable(view.recent, ['cache', 'size', 'pushed'], now, 'Nothing pushed yet.')}</section>
<section><h2>Top paths by downloads</h2>${pathTable(view.top, ['cache', 'size', 'downloads'], now, 'No downloads counted yet.')}</section>
</div>`;
  return renderPage({ title: 'Caches', crumbs: [{ label: 'Caches' }], viewer: view.viewer, flash: view.flash, here: '/' }, body);
}
