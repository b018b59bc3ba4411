// Tokens of a cache (`/ui/caches/<cache>/tokens`), or all of them for server
// admins (`/ui/tokens`): list, create (the new token is shown here once, and
// never again: only its hash is stored), revoke.

import type { CacheRecord, TokenRecord } from '../../index/cache-index.ts';
import { formatAge, formatTime } from '../display.ts';
import { html, type Html } from '../html.ts';
import { csrfField, describeToken, renderPage, type Flash, type Viewer } from '../layout.ts';
import { revokeUrl, tokensUrl } from '../routes.ts';
import { cacheCrumbs, cacheHeading, cacheTabs } from './cache-parts.ts';

export interface TokensView {
  readonly viewer: Viewer;
  readonly now: number;
  /** The cache whose tokens these are; null: every token (server admins). */
  readonly scope: CacheRecord | null;
  readonly tokens: readonly TokenRecord[];
  /** Where the next page starts; undefined on the last page. */
  readonly nextBefore?: string;
  readonly paged: boolean;
  /** Caches a server admin may create a token for. */
  readonly cacheChoices?: readonly string[];
  /** The token just created: shown this once. */
  readonly created?: { readonly token: string; readonly record: TokenRecord };
  readonly flash?: Flash | undefined;
}

function tokenState(token: TokenRecord, now: number): Html {
  if (token.revokedAt !== null) return html`<span class="badge revoked" title="${formatTime(token.revokedAt)}">revoked</span>`;
  if (token.expiresAt !== null && token.expiresAt <= now) return html`<span class="badge revoked">expired</span>`;
  return html`<span class="badge active">active</span>`;
}

export function renderTokens(view: TokensView): string {
  const { viewer, scope, now } = view;
  const scopeName = scope?.name ?? null;
  const created = view.created;
  const createForm = html`<form class="card" method="post" action="${tokensUrl(scopeName)}">
${csrfField(viewer)}
<h2>New token</h2>
${
  scope === null
    ? html`<label>Cache<select name="cache"><option value="">none: a server-admin token</option>${(view.cacheChoices ?? []).map((c) => html`<option value="${c}">${c}</option>`)}</select></label>`
    : ''
}
<label>Permission<select name="permission"><option value="read">read</option><option value="write">write (push)</option><option value="admin">admin</option></select></label>
<label>Label<input type="text" name="label" maxlength="200" placeholder="ci-runner, alice's laptop…"></label>
<label>Expires after<input type="text" name="expires" maxlength="20" placeholder="never, or 30d, 12h…"></label>
<button type="submit">Create token</button>
</form>`;
  const body = html`${scope ? html`${cacheHeading(scope)}${cacheTabs(scope.name, 'tokens', true)}` : html`<h1>All tokens</h1>`}
${
  created &&
  html`<section class="card" id="new-token">
<h2>Token created: ${created.record.label || created.record.id}</h2>
<p>This is the only time the token is shown; larder keeps only its hash. Copy it now.</p>
<p class="secret mono" id="new-token-value">${created.token}</p>
<button type="button" class="quiet" data-copy="new-token-value" hidden>Copy</button>
<p class="muted">It grants ${describeToken(created.record)}${created.record.expiresAt !== null ? html`, until ${formatTime(created.record.expiresAt)}` : ''}.</p>
</section>`
}
${createForm}
<h2>${view.paged ? 'Older tokens' : 'Tokens'}</h2>
${
  view.tokens.length === 0
    ? html`<p class="muted">No tokens.</p>`
    : html`<table class="tokens">
<thead><tr><th>ID</th><th>Label</th><th>Grants</th><th class="num">Created</th><th class="num">Expires</th><th>State</th><th></th></tr></thead>
<tbody>${view.tokens.map(
        (t) => html`<tr id="token-${t.id}"><td class="mono">${t.id}</td><td>${t.label}</td><td>${describeToken(t)}</td>
<td class="num" title="${formatTime(t.createdAt)}">${formatAge(t.createdAt, now)}</td><td class="num">${t.expiresAt === null ? 'never' : formatTime(t.expiresAt)}</td>
<td>${tokenState(t, now)}${t.id === viewer.token.id ? html` <span class="badge">this session</span>` : ''}</td>
<td>${
          t.revokedAt === null &&
          html`<form class="inline" method="post" action="${revokeUrl(scopeName, t.id)}" data-confirm="${`Revoke token ${t.id} (${t.label || 'no label'})? Whoever uses it is refused from now on.`}">${csrfField(viewer)}<button class="danger" type="submit">Revoke</button></form>`
        }</td></tr>`,
      )}</tbody></table>`
}
<p class="pager">${view.paged && html`<a href="${tokensUrl(scopeName)}">Newest tokens</a> `}${view.nextBefore !== undefined && html`<a rel="next" href="${tokensUrl(scopeName, view.nextBefore)}">Older tokens</a>`}</p>`;
  const crumbs = scope ? cacheCrumbs(scope.name, 'Tokens') : [{ label: 'Caches', href: '/' }, { label: 'Tokens' }];
  return renderPage({ title: scope ? `Tokens · ${scope.name}` : 'Tokens', crumbs, viewer, flash: view.flash, here: tokensUrl(scopeName) }, body);
}
