// Sessions: the cookie's attributes, the CSRF token, refusing cross-site forms,
// and where a sign-in may send the browser next.

import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { safeNext } from '../../src/dashboard/routes.ts';
import {
  clearedSessionCookie,
  crossSiteProblem,
  csrfTokenFor,
  csrfTokenMatches,
  isHttps,
  parseCookies,
  sessionCookie,
} from '../../src/dashboard/session.ts';

function request(headers: Record<string, string | string[]>, encrypted = false): IncomingMessage {
  return { headers, socket: { encrypted } } as unknown as IncomingMessage;
}

test('the session cookie is HttpOnly and SameSite=Strict, Secure over https; clearing it expires it', () => {
  assert.equal(sessionCookie('ldr_a+b/c=', false), 'larder_session=ldr_a%2Bb%2Fc%3D; Path=/; HttpOnly; SameSite=Strict');
  assert.equal(sessionCookie('t', true), 'larder_session=t; Path=/; HttpOnly; SameSite=Strict; Secure');
  assert.match(clearedSessionCookie(true), /^larder_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0; Secure$/);
});

test('cookies are parsed and decoded; the first of a name wins; broken ones are skipped', () => {
  const cookies = parseCookies('a=1; larder_session=ldr_a%2Bb; a=2; bad=%E0%A4%A; quoted="x y"; novalue');
  assert.equal(cookies.get('a'), '1');
  assert.equal(cookies.get('larder_session'), 'ldr_a+b');
  assert.equal(cookies.get('quoted'), 'x y');
  assert.equal(cookies.has('bad'), false);
  assert.equal(parseCookies(undefined).size, 0);
});

test('https is the socket’s or what the proxy says in X-Forwarded-Proto', () => {
  assert.equal(isHttps(request({})), false);
  assert.equal(isHttps(request({}, true)), true);
  assert.equal(isHttps(request({ 'x-forwarded-proto': 'https' })), true);
  assert.equal(isHttps(request({ 'x-forwarded-proto': 'HTTPS, http' })), true);
  assert.equal(isHttps(request({ 'x-forwarded-proto': 'http' })), false);
});

test('the CSRF token belongs to one session token and is compared whole', () => {
  const csrf = csrfTokenFor('ldr_one');
  assert.notEqual(csrf, csrfTokenFor('ldr_two'));
  assert.equal(csrfTokenMatches('ldr_one', csrf), true);
  assert.equal(csrfTokenMatches('ldr_two', csrf), false);
  assert.equal(csrfTokenMatches('ldr_one', csrf.slice(0, -1)), false);
  assert.equal(csrfTokenMatches('ldr_one', ''), false);
  assert.equal(csrfTokenMatches('ldr_one', null), false);
  assert.equal(csrf.includes('ldr_one'), false, 'the session token cannot be read back from it');
});

test('forms from another site are refused by Sec-Fetch-Site or Origin; same-site and header-less ones pass', () => {
  assert.equal(crossSiteProblem(request({ host: 'cache.example:8080' })), undefined);
  assert.equal(crossSiteProblem(request({ host: 'cache.example:8080', origin: 'http://cache.example:8080', 'sec-fetch-site': 'same-origin' })), undefined);
  assert.equal(crossSiteProblem(request({ host: '127.0.0.1:9', origin: 'https://cache.example', 'x-forwarded-host': 'cache.example' })), undefined);
  assert.match(crossSiteProblem(request({ host: 'cache.example', origin: 'https://evil.example' }))!, /sent from https:\/\/evil\.example/);
  assert.match(crossSiteProblem(request({ host: 'cache.example', origin: 'http://cache.example:81' }))!, /not from this server/);
  assert.match(crossSiteProblem(request({ host: 'cache.example', origin: 'null' }))!, /not a URL/);
  assert.match(crossSiteProblem(request({ host: 'cache.example', 'sec-fetch-site': 'cross-site' }))!, /another site/);
  assert.match(crossSiteProblem(request({ host: 'cache.example', 'sec-fetch-site': 'same-site' }))!, /another site/);
});

test('after signing in, only a path on this server is followed', () => {
  assert.equal(safeNext('/ui/caches/main?x=1'), '/ui/caches/main?x=1');
  for (const bad of ['//evil.example/', '/\\evil.example', 'https://evil.example/', 'javascript:alert(1)', '', null, undefined, '/a\nb']) {
    assert.equal(safeNext(bad), '/', String(bad));
  }
});
