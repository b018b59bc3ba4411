// Pieces the pages of a cache share: the tabs, links to paths, tables of paths.

import type { CacheRecord, PathSummary } from '../../index/cache-index.ts';
import { formatAge, formatBytes, formatCount } from '../display.ts';
import { html, type Html } from '../html.ts';
import type { Crumb } from '../layout.ts';
import { cacheUrl, gcUrl, keysUrl, pathUrl, searchUrl, tokensUrl } from '../routes.ts';

export type CacheTab = 'overview' | 'search' | 'gc' | 'tokens' | 'keys';

export function cacheCrumbs(cache: string, last?: string): Crumb[] {
  return [{ label: 'Caches', href: '/' }, { label: cache, href: cacheUrl(cache) }, ...(last ? [{ label: last }] : [])];
}

export function cacheHeading(cache: CacheRecord): Html {
  return html`<h1>${cache.name} <span class="badge ${cache.public ? 'public' : ''}">${cache.public ? 'public' : 'private'}</span></h1>`;
}

/** The tabs of a cache's pages; the admin ones only for those who may use them. */
export function cacheTabs(cache: string, here: CacheTab, canAdmin: boolean): Html {
  const tabs: [CacheTab, string, string][] = [
    ['overview', 'Overview', cacheUrl(cache)],
    ['search', 'Search', searchUrl(cache)],
    ...(canAdmin
      ? ([
          ['gc', 'GC preview', gcUrl(cache)],
          ['tokens', 'Tokens', tokensUrl(cache)],
          ['keys', 'Keys', keysUrl(cache)],
        ] as [CacheTab, string, string][])
      : []),
  ];
  return html`<nav class="tabs">${tabs.map(([id, label, href]) => html`<a href="${href}" class="${id === here ? 'here' : ''}">${label}</a>`)}</nav>`;
}

/** The name of a store path basename (after `<hash>-`). */
export function pathName(base: string): string {
  return base.slice(33);
}

export function pathLink(cache: string, path: Pick<PathSummary, 'hashPart' | 'base'>): Html {
  return html`<a class="name" href="${pathUrl(cache, path.hashPart)}">${pathName(path.base)}</a> <span class="hash mono">${path.hashPart.slice(0, 8)}</span>`;
}

export type PathColumn = 'size' | 'downloads' | 'pushed' | 'accessed' | 'cache';

/** A table of paths with the columns asked for; `cacheOf` says which cache each row is in. */
export function pathTable(
  rows: readonly { cache: string; path: PathSummary }[],
  columns: readonly PathColumn[],
  now: number,
  empty: string,
): Html {
  if (rows.length === 0) return html`<p class="muted">${empty}</p>`;
  const head: Record<PathColumn, Html> = {
    cache: html`<th>Cache</th>`,
    size: html`<th class="num">Size</th>`,
    downloads: html`<th class="num">Downloads</th>`,
    pushed: html`<th class="num">Pushed</th>`,
    accessed: html`<th class="num">Last access</th>`,
  };
  const cell = (column: PathColumn, cache: string, p: PathSummary): Html => {
    switch (column) {
      case 'cache':
        return html`<td><a href="${cacheUrl(cache)}">${cache}</a></td>`;
      case 'size':
        return html`<td class="num" title="NAR ${formatBytes(p.narSize)}">${formatBytes(p.fileSize)}</td>`;
      case 'downloads':
        return html`<td class="num">${formatCount(p.downloads)}</td>`;
      case 'pushed':
        return html`<td class="num">${formatAge(p.createdAt, now)}</td>`;
      case 'accessed':
        return html`<td class="num">${formatAge(p.accessedAt, now)}</td>`;
    }
  };
  return html`<table>
<thead><tr><th>Path</th>${columns.map((c) => head[c])}</tr></thead>
<tbody>${rows.map(({ cache, path }) => html`<tr><td>${pathLink(cache, path)}</td>${columns.map((c) => cell(c, cache, path))}</tr>`)}</tbody>
</table>`;
}
