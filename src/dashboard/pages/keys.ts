// `/ui/caches/<cache>/keys`: the cache's signing keys. Rotation makes a new
// active key and leaves the old one published (still trusted by clients) until
// it is retired. Secret keys are never shown.

import type { CacheRecord, KeyRecord } from '../../index/cache-index.ts';
import { formatAge, formatTime } from '../display.ts';
import { html } from '../html.ts';
import { csrfField, renderPage, type Flash, type Viewer } from '../layout.ts';
import { keysUrl, retireUrl, rotateUrl } from '../routes.ts';
import { cacheCrumbs, cacheHeading, cacheTabs } from './cache-parts.ts';

export interface KeysView {
  readonly viewer: Viewer;
  readonly now: number;
  readonly cache: CacheRecord;
  readonly keys: readonly KeyRecord[];
  readonly flash?: Flash | undefined;
}

const STATE_TEXT = {
  active: 'active: signs new uploads',
  published: 'published: still trusted, signs nothing new',
  retired: 'retired',
} as const;

export function renderKeys(view: KeysView): string {
  const { cache, viewer, now } = view;
  const actives = view.keys.filter((k) => k.state === 'active').length;
  const body = html`${cacheHeading(cache)}
${cacheTabs(cache.name, 'keys', true)}
<table class="keys">
<thead><tr><th>Name</th><th>State</th><th>Public key</th><th class="num">Created</th><th></th></tr></thead>
<tbody>${view.keys.map(
    (k) => html`<tr id="key-${k.name}"><td><b>${k.name}</b></td><td><span class="badge ${k.state}">${STATE_TEXT[k.state]}</span></td>
<td class="mono name">${k.publicKey}</td><td class="num" title="${formatTime(k.createdAt)}">${formatAge(k.createdAt, now)}</td>
<td>${
      k.state !== 'retired' &&
      !(k.state === 'active' && actives === 1) &&
      html`<form class="inline" method="post" action="${retireUrl(cache.name, k.name)}" data-confirm="${`Retire ${k.name}? Clients stop trusting paths signed only by it once they fetch the new key list.`}">${csrfField(viewer)}<button class="danger" type="submit">Retire</button></form>`
    }</td></tr>`,
  )}</tbody>
</table>
<form class="card" method="post" action="${rotateUrl(cache.name)}" data-confirm="Make a new signing key? The current one stays published until you retire it.">
${csrfField(viewer)}
<p>Rotation makes a new active key; the current one stays published, so clients keep trusting what it signed. Give clients the new public key, then retire the old one.</p>
<button type="submit">Rotate signing key</button>
</form>`;
  return renderPage({ title: `Keys · ${cache.name}`, crumbs: cacheCrumbs(cache.name, 'Keys'), viewer, flash: view.flash, here: keysUrl(cache.name) }, body);
}
