// A refusal or failure, as a page: the status, one sentence, a way on.

import { html } from '../html.ts';
import { renderPage, type Viewer } from '../layout.ts';
import { loginUrl } from '../routes.ts';

export interface ErrorView {
  readonly viewer: Viewer | undefined;
  readonly status: number;
  readonly message: string;
  /** The page asked for, to come back to after signing in. */
  readonly here?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Sign in needed',
  403: 'Not allowed',
  404: 'Not found',
  405: 'Method not allowed',
  409: 'Conflict',
  413: 'Too large',
  503: 'Unavailable',
};

export function renderError(view: ErrorView): string {
  const title = TITLES[view.status] ?? (view.status >= 500 ? 'Server error' : 'Error');
  const body = html`<section class="card">
<h1>${title}</h1>
<p>${view.message}</p>
<p>${!view.viewer && view.status !== 503 && html`<a href="${loginUrl(view.here)}">Sign in</a> with a token that may see this, or go `}<a href="/">back to the caches</a>.</p>
</section>`;
  return renderPage({ title, viewer: view.viewer, here: view.here }, body);
}
