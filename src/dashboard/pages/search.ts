// `/ui/caches/<cache>/search?q=…`: paths by name or hash, a page at a time.

import type { CacheRecord, PathSummary } from '../../index/cache-index.ts';
import { html } from '../html.ts';
import { renderPage, type Viewer } from '../layout.ts';
import { searchUrl } from '../routes.ts';
import { cacheCrumbs, cacheHeading, cacheTabs, pathTable } from './cache-parts.ts';

export interface SearchView {
  readonly viewer: Viewer | undefined;
  readonly now: number;
  readonly cache: CacheRecord;
  readonly canAdmin: boolean;
  readonly query: string;
  /** Why the query cannot be run, if so. */
  readonly problem?: string;
  readonly results: readonly PathSummary[];
  /** Where the next page starts; undefined on the last page. */
  readonly nextAfter?: string;
  /** Whether this is a later page. */
  readonly paged: boolean;
}

export function renderSearch(view: SearchView): string {
  const name = view.cache.name;
  const body = html`${cacheHeading(view.cache)}
${cacheTabs(name, 'search', view.canAdmin)}
<form class="card" method="get" action="${searchUrl(name)}" role="search">
<label>Search store paths by name or hash<input type="search" name="q" value="${view.query}" placeholder="hello, or a hash such as 0c7a1f…" maxlength="200" autofocus></label>
<button type="submit">Search</button>
</form>
${
  view.query === ''
    ? html`<p class="muted">Type part of a name (case does not matter) or the start of a hash; a whole store path opens its page.</p>`
    : view.problem !== undefined
      ? html`<p class="flash error">${view.problem}</p>`
      : html`<h2>${view.results.length === 0 ? 'No paths' : view.paged ? 'More paths' : 'Paths'} matching “${view.query}”</h2>
${view.results.length > 0 && pathTable(view.results.map((path) => ({ cache: name, path })), ['size', 'downloads', 'pushed'], view.now, '')}
<p class="pager">${view.paged && html`<a href="${searchUrl(name, view.query)}">First page</a> `}${view.nextAfter !== undefined && html`<a rel="next" href="${searchUrl(name, view.query, view.nextAfter)}">Next page</a>`}</p>`
}`;
  return renderPage({ title: `Search ${name}`, crumbs: cacheCrumbs(name, 'Search'), viewer: view.viewer, here: searchUrl(name, view.query) }, body);
}
