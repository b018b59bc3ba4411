// The route label of a request: a small fixed set, so that metrics stay a
// bounded number of series whatever URLs clients send (never the raw path).

import { parseResource } from '../server/binary-cache.ts';

export const ROUTES = ['narinfo', 'nar', 'cache-info', 'listing', 'log', 'api', 'metrics', 'health', 'dashboard', 'other'] as const;

export type Route = (typeof ROUTES)[number];

/** First path segments of the dashboard's pages; cache names cannot take them (services/cache-admin.ts reserves them). */
const DASHBOARD_SEGMENTS = new Set(['ui', 'static', 'login', 'logout', 'favicon.ico']);

/** What a request URL (path and query, as `req.url` has it) asks for. */
export function routeOf(url: string | undefined): Route {
  const path = (url ?? '/').split('?', 1)[0]!;
  if (!path.startsWith('/')) return 'other';
  if (path === '/') return 'dashboard';
  const segments = path.slice(1).split('/');
  const first = segments[0]!;
  if (segments.length === 1) {
    if (first === 'healthz' || first === 'readyz') return 'health';
    if (first === 'metrics') return 'metrics';
  }
  if (first === 'api') return 'api';
  if (DASHBOARD_SEGMENTS.has(first)) return 'dashboard';
  if (segments.length < 2 || first === '') return 'other';
  // The same grammar the binary cache protocol serves: a name that parses is one of its files.
  const resource = parseResource(segments.slice(1).join('/'));
  return resource?.kind ?? 'other';
}
