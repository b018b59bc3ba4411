import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseResource } from '../../src/server/binary-cache.ts';
import { presentedToken } from '../../src/server/credentials.ts';
import { HttpError } from '../../src/server/http-error.ts';
import { pathSegments } from '../../src/server/server.ts';
import { TtlCache } from '../../src/services/ttl-cache.ts';

const hash = 'xwcj2425qhak961159fdhpd5v35ihakr';

test('binary cache resources', () => {
  assert.deepEqual(parseResource('nix-cache-info'), { kind: 'cache-info' });
  assert.deepEqual(parseResource(`${hash}.narinfo`), { kind: 'narinfo', hashPart: hash });
  assert.deepEqual(parseResource(`${hash}.ls`), { kind: 'listing', hashPart: hash });
  assert.deepEqual(parseResource('nar/abc.nar.zst'), { kind: 'nar', fileName: 'abc.nar.zst' });
  assert.deepEqual(parseResource(`log/${hash}-hello.drv`), { kind: 'log', drvBase: `${hash}-hello.drv` });
  for (const bad of ['x.narinfo', `${hash}e.narinfo`, 'nar/a/b', 'log/nonsense', 'realisations/x.doi', '']) {
    assert.equal(parseResource(bad), undefined, bad);
  }
});

test('path segments are decoded and traversal is refused', () => {
  assert.deepEqual(pathSegments('/main/nar/x.nar?foo=1'), ['main', 'nar', 'x.nar']);
  assert.deepEqual(pathSegments('/a%2Bb/c'), ['a+b', 'c']);
  for (const bad of ['/main/..', '/main/%2e%2e/x', '/main/a%2fb', '/main/%00', '/main/%zz', 'relative', '/main/a%5cb']) {
    assert.throws(() => pathSegments(bad), (e: unknown) => e instanceof HttpError && e.status === 400, bad);
  }
});

test('tokens from Basic (netrc) and Bearer headers', () => {
  const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
  assert.equal(presentedToken(basic(':tok')), 'tok');
  assert.equal(presentedToken(basic('anyone:tok')), 'tok');
  assert.equal(presentedToken(basic('tok:')), 'tok');
  assert.equal(presentedToken('Bearer tok'), 'tok');
  assert.equal(presentedToken('bearer  tok '), 'tok');
  assert.equal(presentedToken(undefined), undefined);
  assert.equal(presentedToken('Digest x'), undefined);
  assert.equal(presentedToken(basic(':')), undefined);
});

test('TtlCache evicts the least recently used entry and expired ones', async () => {
  const cache = new TtlCache<number>(2, 20);
  cache.set('a', 1);
  cache.set('b', 2);
  assert.equal(cache.get('a'), 1);
  cache.set('c', 3);
  assert.equal(cache.get('b'), undefined, 'b was least recently used');
  assert.equal(cache.get('a'), 1);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(cache.get('a'), undefined, 'expired');
});
