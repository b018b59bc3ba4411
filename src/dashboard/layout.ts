// The frame every dashboard page shares: head, the bar with where you are and
// who you are signed in as, an optional message, and the page's own body.

import type { TokenRecord } from '../index/cache-index.ts';
import { ASSETS } from './assets.ts';
import { html, urlPath, type Html } from './html.ts';

/** Who is looking: the session's token record and the CSRF token its forms carry. */
export interface Viewer {
  readonly token: TokenRecord;
  readonly csrf: string;
}

export interface Crumb {
  readonly label: string;
  readonly href?: string;
}

export interface Flash {
  readonly kind: 'ok' | 'error';
  readonly text: string;
}

export interface Frame {
  readonly title: string;
  readonly crumbs?: readonly Crumb[];
  readonly viewer: Viewer | undefined;
  readonly flash?: Flash | undefined;
  /** Where "Sign in" comes back to. */
  readonly here?: string;
}

/** What a token may do, in words: `server admin`, `admin of main`, `read on main`. */
export function describeToken(token: Pick<TokenRecord, 'cache' | 'permission'>): string {
  if (token.cache === null) return 'server admin';
  return token.permission === 'admin' ? `admin of ${token.cache}` : `${token.permission} on ${token.cache}`;
}

/** A hidden field carrying the session's CSRF token: in every form that changes something. */
export function csrfField(viewer: Viewer): Html {
  return html`<input type="hidden" name="csrf" value="${viewer.csrf}">`;
}

export function renderPage(frame: Frame, body: Html): string {
  const { viewer } = frame;
  const who = viewer
    ? html`<span>Signed in: <b>${viewer.token.label || viewer.token.id}</b> (${describeToken(viewer.token)})</span>
<form class="inline" method="post" action="/ui/logout">${csrfField(viewer)}<button class="quiet" type="submit">Sign out</button></form>`
    : html`<a href="${urlPath(['ui', 'login'], { next: frame.here })}">Sign in</a>`;
  const crumbs = (frame.crumbs ?? []).map((c, i) => html`${i > 0 ? ' / ' : ''}${c.href ? html`<a href="${c.href}">${c.label}</a>` : c.label}`);
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<link rel="icon" href="data:,">
<title>${frame.title} · larder</title>
<link rel="stylesheet" href="${ASSETS['dashboard.css']!.url}">
<script src="${ASSETS['dashboard.js']!.url}" defer></script>
</head>
<body>
<header class="top"><a class="brand" href="/">larder</a><nav class="crumbs">${crumbs}</nav><div class="who">${who}</div></header>
<main>
${frame.flash && html`<p class="flash ${frame.flash.kind === 'error' ? 'error' : ''}" role="status">${frame.flash.text}</p>`}
${body}
</main>
<footer>larder · a Nix binary cache</footer>
</body>
</html>
`.toString();
}
