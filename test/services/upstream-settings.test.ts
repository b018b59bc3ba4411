import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPublicKey, generateSecretKey } from '../../src/nix/signing-key.ts';
import { Rejection } from '../../src/services/rejection.ts';
import { parseUpstreams } from '../../src/services/upstream-settings.ts';

const NIXOS_KEY = 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';

function refused(value: unknown, message: RegExp): void {
  assert.throws(
    () => parseUpstreams(value),
    (error: unknown) => error instanceof Rejection && error.kind === 'invalid' && message.test(error.message) && !error.message.includes('\n'),
  );
}

test('a valid list is kept in order, keys de-duplicated', () => {
  const other = formatPublicKey(generateSecretKey('mine-1').publicKey);
  assert.deepEqual(
    parseUpstreams([
      { url: 'https://cache.nixos.org', publicKeys: [NIXOS_KEY, NIXOS_KEY], priority: 40 },
      { url: 'http://127.0.0.1:8080/main', publicKeys: [other], priority: 0 },
    ]),
    [
      { url: 'https://cache.nixos.org', publicKeys: [NIXOS_KEY], priority: 40 },
      { url: 'http://127.0.0.1:8080/main', publicKeys: [other], priority: 0 },
    ],
  );
  assert.deepEqual(parseUpstreams([]), []);
});

test('each problem is refused in one line naming its place', () => {
  const ok = { url: 'https://cache.nixos.org', publicKeys: [NIXOS_KEY], priority: 40 };
  refused({ url: 'x' }, /^upstreams: expected an array/);
  refused([ok, 'https://x'], /^upstreams\[1\]: expected an object/);
  refused([{ ...ok, url: 42 }], /^upstreams\[0\]\.url: expected a URL string/);
  refused([{ ...ok, url: 'cache.nixos.org' }], /^upstreams\[0\]\.url: 'cache.nixos.org' is not a URL/);
  refused([{ ...ok, url: 'ftp://cache.nixos.org' }], /^upstreams\[0\]\.url: .* is not http or https/);
  refused([{ ...ok, url: 'https://cache.nixos.org/' }], /^upstreams\[0\]\.url: .* must not end with a slash/);
  refused([{ ...ok, url: 'https://u:p@cache.nixos.org' }], /^upstreams\[0\]\.url: .* must not carry credentials/);
  refused([{ ...ok, url: 'https://cache.nixos.org?x=1' }], /^upstreams\[0\]\.url: .* must not have a query/);
  refused([ok, ok], /^upstreams\[1\]\.url: 'https:\/\/cache.nixos.org' is listed twice/);
  refused([{ ...ok, publicKeys: [] }], /^upstreams\[0\]\.publicKeys: expected a non-empty array/);
  refused([{ ...ok, publicKeys: NIXOS_KEY }], /^upstreams\[0\]\.publicKeys: expected a non-empty array/);
  refused([ok, { ...ok, url: 'https://b', publicKeys: [NIXOS_KEY, 'nope'] }], /^upstreams\[1\]\.publicKeys\[1\]: public key 'nope'/);
  refused([{ ...ok, publicKeys: ['k:AAAA'] }], /^upstreams\[0\]\.publicKeys\[0\]: public key 'k' holds 3 bytes/);
  refused([{ ...ok, publicKeys: [7] }], /^upstreams\[0\]\.publicKeys\[0\]: expected a string/);
  refused([{ ...ok, priority: 1.5 }], /^upstreams\[0\]\.priority: expected an integer from 0 to 1000, got 1.5/);
  refused([{ ...ok, priority: '40' }], /^upstreams\[0\]\.priority: expected an integer/);
  refused([{ url: ok.url, publicKeys: ok.publicKeys }], /^upstreams\[0\]\.priority: expected an integer/);
});
