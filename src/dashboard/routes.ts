// The dashboard's URLs, in one place: pages link with these and the router
// matches the same shapes. Everything but the overview lives under /ui/, a name
// no cache can take (services/cache-admin.ts reserves it).

import { urlPath } from './html.ts';

export const LOGIN_URL = '/ui/login';
export const LOGOUT_URL = '/ui/logout';

export function cacheUrl(cache: string): string {
  return urlPath(['ui', 'caches', cache]);
}

export function searchUrl(cache: string, query?: string, after?: string): string {
  return urlPath(['ui', 'caches', cache, 'search'], { q: query, after });
}

export function pathUrl(cache: string, hashPart: string, referrersAfter?: string): string {
  return urlPath(['ui', 'caches', cache, 'paths', hashPart], { after: referrersAfter });
}

export function gcUrl(cache: string): string {
  return urlPath(['ui', 'caches', cache, 'gc']);
}

/** A cache's tokens, or (null) every token, for server admins. */
export function tokensUrl(cache: string | null, before?: string): string {
  return urlPath(cache === null ? ['ui', 'tokens'] : ['ui', 'caches', cache, 'tokens'], { before });
}

export function revokeUrl(cache: string | null, id: string): string {
  return urlPath(cache === null ? ['ui', 'tokens', id, 'revoke'] : ['ui', 'caches', cache, 'tokens', id, 'revoke']);
}

export function keysUrl(cache: string): string {
  return urlPath(['ui', 'caches', cache, 'keys']);
}

export function rotateUrl(cache: string): string {
  return urlPath(['ui', 'caches', cache, 'keys', 'rotate']);
}

export function retireUrl(cache: string, key: string): string {
  return urlPath(['ui', 'caches', cache, 'keys', key, 'retire']);
}

export function loginUrl(next?: string): string {
  return urlPath(['ui', 'login'], { next });
}

/**
 * A `next` parameter that is safe to redirect to: a path on this server (not `//host`,
 * not a scheme), else the overview.
 */
export function safeNext(next: string | null | undefined): string {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  if (/[\u0000-\u001f\u007f]/.test(next)) return '/';
  return next;
}
