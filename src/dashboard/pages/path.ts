// `/ui/caches/<cache>/paths/<hash>`: one store path: its narinfo, who signed
// it, what it refers to and what refers to it (links, to walk the closure),
// and how big its closure is.

import type { CacheRecord, ClosureSize, PathSummary } from '../../index/cache-index.ts';
import { formatAge, formatBytes, formatCount, formatTime } from '../display.ts';
import { html } from '../html.ts';
import { renderPage, type Viewer } from '../layout.ts';
import { pathUrl } from '../routes.ts';
import { cacheCrumbs, cacheHeading, cacheTabs, pathLink, pathName, pathTable } from './cache-parts.ts';

export interface SignatureView {
  readonly keyName: string;
  readonly value: string;
  /** The state of the cache's key of that name; 'unknown' when the cache has none. */
  readonly keyState: 'active' | 'published' | 'retired' | 'unknown';
  /** Whether it verifies with that key. */
  readonly valid: boolean;
}

export interface ReferenceView {
  readonly hashPart: string;
  readonly base: string;
  /** In this cache (else in an upstream). */
  readonly present: boolean;
  readonly self: boolean;
}

export interface PathView {
  readonly viewer: Viewer | undefined;
  readonly now: number;
  readonly cache: CacheRecord;
  readonly canAdmin: boolean;
  readonly storeDir: string;
  readonly summary: PathSummary;
  readonly narinfo: string;
  /** The narinfo's fields, parsed, in Nix's order. */
  readonly fields: readonly { readonly name: string; readonly value: string }[];
  readonly signatures: readonly SignatureView[];
  readonly references: readonly ReferenceView[];
  readonly referrers: readonly PathSummary[];
  /** Where this page of referrers starts ('' for the first). */
  readonly referrersAfter: string;
  readonly nextReferrersAfter?: string;
  readonly closure: ClosureSize;
  readonly pins: readonly string[];
}

const KEY_STATE_TEXT: Record<SignatureView['keyState'], string> = {
  active: 'active key',
  published: 'published key (rotated out, still trusted)',
  retired: 'retired key',
  unknown: 'not a key of this cache',
};

export function renderPath(view: PathView): string {
  const { cache, summary, now } = view;
  const name = cache.name;
  const storePath = `${view.storeDir}/${summary.base}`;
  // A closure too big to sum on every view: what the walk saw before its limit.
  const atLeast = view.closure.complete ? '' : '≥ ';
  const body = html`${cacheHeading(cache)}
${cacheTabs(name, 'search', view.canAdmin)}
<h2 class="name">${pathName(summary.base)}</h2>
<pre id="store-path">${storePath}</pre>
<ul class="stats">
<li><b>${formatBytes(summary.fileSize)}</b><span>NAR file (${formatBytes(summary.narSize)} unpacked)</span></li>
<li><b>${atLeast}${formatCount(view.closure.paths)}</b><span>paths in its closure</span></li>
<li><b>${atLeast}${formatBytes(view.closure.fileBytes)}</b><span>closure stored (${formatBytes(view.closure.narBytes)} unpacked)</span></li>
<li><b>${formatCount(summary.downloads)}</b><span>downloads</span></li>
<li><b>${formatAge(summary.accessedAt, now)}</b><span>last access</span></li>
<li><b title="${formatTime(summary.createdAt)}">${formatAge(summary.createdAt, now)}</b><span>pushed</span></li>
</ul>
${view.pins.length > 0 && html`<p>Pinned as ${view.pins.map((pin, i) => html`${i > 0 ? ', ' : ''}<b>${pin}</b>`)}: garbage collection keeps its closure.</p>`}
<div class="grid">
<section class="card"><h2>Narinfo</h2>
<dl class="fields">${view.fields.map((f) => html`<dt>${f.name}</dt><dd class="mono">${f.value}</dd>`)}</dl>
<details><summary>As served</summary><pre>${view.narinfo}</pre></details>
</section>
<section class="card"><h2>Signatures</h2>
${
  view.signatures.length === 0
    ? html`<p class="muted">None.</p>`
    : html`<ul class="sigs">${view.signatures.map(
        (s) => html`<li><b>${s.keyName}</b> <span class="badge ${s.valid ? 'ok' : 'bad'}">${s.valid ? 'valid' : 'not verified'}</span> <span class="badge ${s.keyState}">${KEY_STATE_TEXT[s.keyState]}</span><br><code class="muted">${s.value}</code></li>`,
      )}</ul>`
}
</section>
</div>
<section><h2>References (${formatCount(view.references.length)})</h2>
${
  view.references.length === 0
    ? html`<p class="muted">It refers to no other path.</p>`
    : html`<table><tbody>${view.references.map(
        (r) =>
          html`<tr><td>${r.present ? pathLink(name, { hashPart: r.hashPart, base: r.base }) : html`<span class="name">${pathName(r.base)}</span> <span class="hash mono">${r.hashPart.slice(0, 8)}</span>`}</td><td>${r.self ? html`<span class="badge">itself</span>` : !r.present && html`<span class="badge warn">not in this cache (an upstream’s)</span>`}</td></tr>`,
      )}</tbody></table>`
}
</section>
<section><h2>Referrers</h2>
${pathTable(view.referrers.map((path) => ({ cache: name, path })), ['size', 'downloads'], now, view.referrersAfter ? 'No more.' : 'No path of this cache refers to it.')}
<p class="pager">${view.referrersAfter !== '' && html`<a href="${pathUrl(name, summary.hashPart)}">First referrers</a> `}${view.nextReferrersAfter !== undefined && html`<a rel="next" href="${pathUrl(name, summary.hashPart, view.nextReferrersAfter)}">More referrers</a>`}</p>
</section>`;
  return renderPage({ title: pathName(summary.base), crumbs: cacheCrumbs(name, pathName(summary.base)), viewer: view.viewer, here: pathUrl(name, summary.hashPart) }, body);
}
