// The route label is a small fixed set whatever the URL: metrics cannot grow a
// series per URL a client makes up.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ROUTES, routeOf } from '../../src/observability/route.ts';
import { methodLabel } from '../../src/observability/request-observer.ts';

const HASH = '0c8n3bsm0n4q6n2bq3ky6a8f7sjd1qzq';
const FILE_HASH = '1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3';

test('each kind of request has its route', () => {
  const cases: [string, string][] = [
    [`/main/${HASH}.narinfo`, 'narinfo'],
    [`/main/${HASH}.narinfo?x=1`, 'narinfo'],
    [`/team-cache/nar/${FILE_HASH}.nar.zst`, 'nar'],
    [`/main/nar/${FILE_HASH}.nar`, 'nar'],
    ['/main/nix-cache-info', 'cache-info'],
    [`/main/${HASH}.ls`, 'listing'],
    [`/main/log/${HASH}-hello-2.12.drv`, 'log'],
    ['/api/v1/caches', 'api'],
    ['/api/v1/caches/main/gc', 'api'],
    ['/metrics', 'metrics'],
    ['/healthz', 'health'],
    ['/readyz', 'health'],
    ['/', 'dashboard'],
    ['/ui/caches/main', 'dashboard'],
    ['/static/style.css', 'dashboard'],
    ['/login', 'dashboard'],
    ['/favicon.ico', 'dashboard'],
    // What no handler serves as a file of the protocol.
    ['/main', 'other'],
    ['/main/', 'other'],
    ['/main/not-a-hash.narinfo', 'other'],
    [`/main/nar/${FILE_HASH}.nar/x`, 'other'],
    ['/main/log/not-a-store-path', 'other'],
    ['/metrics/x', 'other'],
    ['//x', 'other'],
    ['*', 'other'],
    ['', 'other'],
  ];
  for (const [url, route] of cases) assert.equal(routeOf(url), route, url);
  assert.equal(routeOf(undefined), 'dashboard', 'no URL is the root');
});

test('any URL maps into the fixed set of routes', () => {
  const segment = fc.stringMatching(/^[a-zA-Z0-9._%-]{0,12}$/);
  const path = fc.array(segment, { maxLength: 5 }).map((parts) => `/${parts.join('/')}`);
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), path), (url) => {
      assert.ok((ROUTES as readonly string[]).includes(routeOf(url)), url);
    }),
    { numRuns: 1000 },
  );
});

test('methods outside the standard set share one label', () => {
  assert.equal(methodLabel('GET'), 'GET');
  assert.equal(methodLabel('PUT'), 'PUT');
  assert.equal(methodLabel('PROPFIND'), 'OTHER');
  assert.equal(methodLabel('get'), 'OTHER');
  assert.equal(methodLabel(undefined), 'OTHER');
});
