// `/ui/login`: a token in, a session cookie out. The token field is a password
// field, and the token is never echoed back.

import { html } from '../html.ts';
import { renderPage, type Viewer } from '../layout.ts';
import { LOGIN_URL } from '../routes.ts';

export interface SignInView {
  readonly viewer: Viewer | undefined;
  readonly next: string;
  readonly problem?: string;
}

export function renderSignIn(view: SignInView): string {
  const body = html`<section class="card signin">
<h1>Sign in</h1>
${view.problem && html`<p class="flash error" role="alert">${view.problem}</p>`}
${view.viewer && html`<p class="muted">You are signed in already; signing in again replaces the session.</p>`}
<form method="post" action="${LOGIN_URL}">
<input type="hidden" name="next" value="${view.next}">
<label>Token<input type="password" name="token" autocomplete="off" required autofocus placeholder="ldr_…"></label>
<p><button type="submit">Sign in</button></p>
</form>
<p class="muted">Any larder token works: read tokens see their cache, admin tokens manage it too. Public caches need no token. The session ends when the browser closes, when you sign out or when the token is revoked.</p>
</section>`;
  return renderPage({ title: 'Sign in', crumbs: [{ label: 'Sign in' }], viewer: view.viewer }, body);
}
