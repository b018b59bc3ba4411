// A dashboard session is the token itself, kept in an HttpOnly, SameSite=Strict
// cookie (Secure over https): scripts cannot read it and other sites' pages
// cannot send it. Forms that change state also carry a CSRF token derived from
// the session's token (so every replica can check it without shared state), and
// a request whose Origin or Sec-Fetch-Site says it came from elsewhere is refused.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'larder_session';

/** The cookies a request carries, by name (the first of a name wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    try {
      value = decodeURIComponent(value);
    } catch {
      continue;
    }
    if (name && !cookies.has(name)) cookies.set(name, value);
  }
  return cookies;
}

/** Whether the request reached larder over https, directly or through a proxy that says so. */
export function isHttps(req: IncomingMessage): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted) return true;
  const forwarded = req.headers['x-forwarded-proto'];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim().toLowerCase();
  return proto === 'https';
}

/** Set-Cookie for a session holding `token` (a browser-session cookie: gone when the browser closes). */
export function sessionCookie(token: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** Set-Cookie that ends the session. */
export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

/** The CSRF token of a session: only whoever holds the token (or this value) can compute it. */
export function csrfTokenFor(sessionToken: string): string {
  return createHash('sha256').update(`larder dashboard csrf\0${sessionToken}`).digest('base64url');
}

export function csrfTokenMatches(sessionToken: string, presented: string | null | undefined): boolean {
  if (typeof presented !== 'string') return false;
  const expected = Buffer.from(csrfTokenFor(sessionToken));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Why a state-changing request looks cross-site, or undefined when it does not: a
 * `Sec-Fetch-Site` other than same-origin (or none, for a typed URL), or an `Origin`
 * whose host is not the one the request was sent to (the Host header, or the
 * X-Forwarded-Host a proxy passes on).
 */
export function crossSiteProblem(req: IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `the form was sent from another site (Sec-Fetch-Site: ${site})`;
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return `the request's Origin '${origin}' is not a URL`;
  }
  const forwarded = req.headers['x-forwarded-host'];
  const allowed = [req.headers.host, ...(Array.isArray(forwarded) ? forwarded : [forwarded])]
    .filter((h): h is string => typeof h === 'string')
    .flatMap((h) => h.split(',').map((s) => s.trim().toLowerCase()));
  if (!allowed.includes(host.toLowerCase())) return `the form was sent from ${origin}, not from this server`;
  return undefined;
}
