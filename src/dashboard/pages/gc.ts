// `/ui/caches/<cache>/gc`: what the next garbage collection would free and why
// the rest stays, from the same dry-run planner `larder gc --dry-run` uses.

import type { CacheRecord } from '../../index/cache-index.ts';
import type { GcReport } from '../../services/gc.ts';
import { formatDurationValue } from '../../services/units.ts';
import { formatAge, formatBytes, formatCount, formatTime } from '../display.ts';
import { html, type Html } from '../html.ts';
import { renderPage, type Viewer } from '../layout.ts';
import { gcUrl } from '../routes.ts';
import { cacheCrumbs, cacheHeading, cacheTabs, pathLink } from './cache-parts.ts';

export interface GcView {
  readonly viewer: Viewer | undefined;
  readonly now: number;
  readonly cache: CacheRecord;
  readonly report: GcReport;
}

/** A store path of the report as a link to its page (its name and the start of its hash). */
function storePathLink(cache: string, storePath: string): Html {
  const base = storePath.slice(storePath.lastIndexOf('/') + 1);
  if (base.length < 34 || base[32] !== '-') return html`<span class="mono">${storePath}</span>`;
  return pathLink(cache, { hashPart: base.slice(0, 32), base });
}

const KEPT_REASON = { recent: 'used recently', unlimited: 'no retention limit', referenced: 'referred to', pinned: 'pinned' } as const;

export function renderGcPreview(view: GcView): string {
  const { cache, report, now } = view;
  const { kept, freed, quota, orphans } = report;
  const policy = [
    report.policy.retentionMs === null ? 'no retention limit (paths stay until a size limit needs room)' : `keep paths used within ${formatDurationValue(report.policy.retentionMs)}`,
    report.policy.maxSize === null ? 'no size limit' : `at most ${formatBytes(report.policy.maxSize)} of NARs`,
    `uploads without a narinfo kept ${formatDurationValue(report.policy.uploadGraceMs)}`,
  ];
  const body = html`${cacheHeading(cache)}
${cacheTabs(cache.name, 'gc', true)}
<p class="muted">A dry run planned ${formatTime(report.startedAt)} in ${formatCount(report.timings.totalMs)} ms (visits within a minute share it: <a href="/ui/caches/${cache.name}/gc?fresh=1">plan again</a>); nothing was deleted. Policy: ${policy.join('; ')}.</p>
<ul class="stats">
<li><b>${formatCount(report.paths)}</b><span>paths now (${formatBytes(report.bytes)})</span></li>
<li><b>${formatCount(freed.paths)}</b><span>would be freed (${formatBytes(freed.bytes)})</span></li>
<li><b>${formatCount(kept.paths)}</b><span>kept (${formatBytes(kept.bytes)})</span></li>
<li><b>${formatCount(orphans.nars + orphans.files)}</b><span>orphan files (${formatBytes(orphans.narBytes)})</span></li>
</ul>
<div class="grid">
<section class="card"><h2>Would be freed</h2>
<p>${formatCount(freed.expired.paths)} expired (${formatBytes(freed.expired.bytes)}), ${formatCount(freed.evicted.paths)} evicted for the size limit (${formatBytes(freed.evicted.bytes)}).</p>
${
  freed.examples.length === 0
    ? html`<p class="muted">Nothing: every path is kept.</p>`
    : html`<table><thead><tr><th>Path (the first ${freed.examples.length} to go)</th><th>Why</th><th class="num">Last access</th></tr></thead><tbody>${freed.examples.map(
        (e) => html`<tr><td>${storePathLink(cache.name, e.storePath)}</td><td>${e.reason}</td><td class="num">${formatAge(e.accessedAt, now)}</td></tr>`,
      )}</tbody></table>`
}
${quota && html`<p class="muted">Size limit ${formatBytes(quota.maxSize)}: ${formatBytes(quota.bytesBefore)} before eviction, ${formatBytes(quota.bytesAfter)} after (${formatBytes(quota.pinnedBytes)} pinned, never evicted)${quota.reached ? '' : '; the limit cannot be reached without touching pinned or referenced paths'}.</p>`}
</section>
<section class="card"><h2>Why the rest is kept</h2>
<ul>
<li>${formatCount(kept.pinnedRoots)} pinned, ${formatCount(kept.recentRoots)} used recently${kept.oldestRecentAccess !== null ? html` (the oldest ${formatAge(kept.oldestRecentAccess, now)})` : ''}, ${formatCount(kept.unlimitedRoots)} kept for want of a retention limit</li>
<li>${formatCount(kept.referenced)} because a kept path refers to them</li>
</ul>
<h3>Pins</h3>
${
  kept.pins.length === 0
    ? html`<p class="muted">No pins.</p>`
    : html`<table><thead><tr><th>Pin</th><th>Path</th><th class="num">Closure</th></tr></thead><tbody>${kept.pins.map(
        (p) => html`<tr><td><b>${p.name}</b></td><td>${storePathLink(cache.name, p.storePath)}</td><td class="num">${p.paths === null ? '–' : html`${formatCount(p.paths)} paths, ${formatBytes(p.bytes ?? 0)}`}</td></tr>`,
      )}</tbody></table>`
}
${kept.examples.length > 0 && html`<h3>Examples</h3><table><tbody>${kept.examples.map(
    (e) => html`<tr><td>${storePathLink(cache.name, e.storePath)}</td><td>${KEPT_REASON[e.reason]}${e.referencedBy ? html` by ${storePathLink(cache.name, e.referencedBy)}` : ''}${e.accessedAt !== undefined ? html` (${formatAge(e.accessedAt, now)})` : ''}</td></tr>`,
  )}</tbody></table>`}
</section>
</div>
<p class="muted">To collect now: <code>larder gc ${cache.name}</code>. Orphans: ${formatCount(orphans.nars)} NARs no path uses, ${formatCount(orphans.files)} files without a record, ${formatCount(orphans.abandoned)} abandoned uploads.</p>`;
  return renderPage({ title: `GC preview · ${cache.name}`, crumbs: cacheCrumbs(cache.name, 'GC preview'), viewer: view.viewer, here: gcUrl(cache.name) }, body);
}
