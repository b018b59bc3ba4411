// Upstreams: declared per cache through the admin API, and what they change for
// uploads. With two real servers, a path pushed to a downstream cache may refer
// to a dependency only the upstream holds, and a Nix client with both as
// substituters then gets the whole closure, signatures required.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatPublicKey, generateSecretKey } from '../../src/nix/signing-key.ts';
import { api, startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix, type NixEnv } from '../helpers/nix-env.ts';

const NIXOS = { url: 'https://cache.nixos.org', publicKeys: ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='], priority: 40 };

function putUpstreams(server: RunningLarder, upstreams: unknown, token?: string): Promise<Response> {
  return api(server, '/api/v1/caches/main/upstreams', { method: 'PUT', body: JSON.stringify(upstreams), ...(token && { token }) });
}

async function json<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  return JSON.parse(text) as T;
}

async function token(server: RunningLarder, permission: string): Promise<string> {
  const res = await api(server, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ cache: 'main', permission }) });
  return (await json<{ token: string }>(res, 201)).token;
}

test('upstreams and mirror through the admin API', async (t) => {
  const server = await startLarder(t);
  const path = '/api/v1/caches/main/upstreams';

  await t.test('none at first; a PUT replaces the list, which the cache shows with mirror', async () => {
    assert.deepEqual(await json(await api(server, path), 200), []);
    const mine = { url: 'http://127.0.0.1:1/team', publicKeys: [formatPublicKey(generateSecretKey('team-1').publicKey)], priority: 10 };
    assert.deepEqual(await json(await putUpstreams(server, [NIXOS, mine]), 200), [mine, NIXOS]);
    assert.deepEqual(await json(await api(server, path), 200), [mine, NIXOS]);
    const cache = await json<Record<string, unknown>>(await api(server, '/api/v1/caches/main'), 200);
    assert.equal(cache.mirror, false);
    assert.deepEqual(cache.upstreams, [mine, NIXOS]);
    assert.deepEqual(await json(await putUpstreams(server, [NIXOS]), 200), [NIXOS]);
  });

  await t.test('mirror is a cache setting, stored and shown', async () => {
    const patched = await api(server, '/api/v1/caches/main', { method: 'PATCH', body: JSON.stringify({ mirror: true }) });
    assert.equal((await json<{ mirror: boolean }>(patched, 200)).mirror, true);
    assert.equal((await json<{ mirror: boolean }>(await api(server, '/api/v1/caches/main'), 200)).mirror, true);
    const wrong = await api(server, '/api/v1/caches/main', { method: 'PATCH', body: JSON.stringify({ mirror: 'yes' }) });
    assert.match((await json<{ error: string }>(wrong, 400)).error, /^field 'mirror': expected a boolean/);
    const created = await api(server, '/api/v1/caches', { method: 'POST', body: JSON.stringify({ name: 'proxy', mirror: true }) });
    const proxy = await json<{ mirror: boolean; upstreams: unknown[] }>(created, 201);
    assert.deepEqual([proxy.mirror, proxy.upstreams], [true, []]);
  });

  await t.test('an invalid list is refused with 400 naming the field, and changes nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ url: NIXOS.url }, /^upstreams: expected an array/],
      [[NIXOS, { ...NIXOS, url: 'https://b.example', publicKeys: ['cache.nixos.org-1:short'] }], /^upstreams\[1\]\.publicKeys\[0\]: /],
      [[{ ...NIXOS, url: 'https://cache.nixos.org/' }], /^upstreams\[0\]\.url: .* must not end with a slash/],
      [[{ ...NIXOS, url: 'file:///srv/cache' }], /^upstreams\[0\]\.url: .* is not http or https/],
      [[{ ...NIXOS, publicKeys: [] }], /^upstreams\[0\]\.publicKeys: expected a non-empty array/],
      [[{ ...NIXOS, priority: 'high' }], /^upstreams\[0\]\.priority: expected an integer/],
    ];
    for (const [body, message] of cases) {
      const { error } = await json<{ error: string }>(await putUpstreams(server, body), 400);
      assert.match(error, message);
      assert.doesNotMatch(error, /\n/);
    }
    const bad = await api(server, path, { method: 'PUT', body: '[{' });
    assert.equal(bad.status, 400);
    assert.deepEqual(await json(await api(server, path), 200), [NIXOS]);
  });

  await t.test('reading needs read permission, replacing needs the cache admin', async () => {
    const [read, write] = [await token(server, 'read'), await token(server, 'write')];
    assert.deepEqual(await json(await api(server, path, { token: read }), 200), [NIXOS]);
    assert.equal((await putUpstreams(server, [], read)).status, 403);
    assert.equal((await putUpstreams(server, [], write)).status, 403);
    assert.equal((await putUpstreams(server, [], await token(server, 'admin'))).status, 200);
    assert.equal((await fetch(`${server.url}${path}`)).status, 401);
    assert.equal((await api(server, '/api/v1/caches/nope/upstreams')).status, 404);
  });
});

/** Nix's own upload of `path` (NAR and narinfo), taken from a file:// binary cache `nix copy` wrote. */
async function nixUpload(nix: NixEnv, path: string): Promise<{ hashPart: string; narinfo: string; narUrl: string; nar: Buffer }> {
  const dir = join(nix.dir, `bc-${path.slice(11, 19)}`);
  await nix.run('nix', ['copy', '--to', `file://${dir}?compression=zstd`, path]);
  const hashPart = path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
  const narinfo = await readFile(join(dir, `${hashPart}.narinfo`), 'utf8');
  const narUrl = /^URL: (\S+)$/m.exec(narinfo)![1]!;
  return { hashPart, narinfo, narUrl, nar: await readFile(join(dir, narUrl)) };
}

function put(server: RunningLarder, path: string, body: string | Uint8Array): Promise<Response> {
  return fetch(`${server.cacheUrl}/${path}`, { method: 'PUT', body, headers: { Authorization: `Bearer ${server.writeToken}` } });
}

test('a path whose dependency is only upstream is accepted, and Nix substitutes the closure from both', async (t) => {
  if (skipWithoutNix(t)) return;
  // Two servers on one host: their key names need different prefixes, or a client would take one for the other.
  const upstream = await startLarder(t, { env: { LARDER_KEY_NAME_PREFIX: 'upstream-' } });
  const downstream = await startLarder(t, { env: { LARDER_KEY_NAME_PREFIX: 'downstream-' } });
  const nix = await nixEnv(t);
  const [dep, top, orphanDep, orphan] = await nix.buildClosure([
    { name: 'dep', size: 5000 },
    { name: 'top', deps: ['dep'], size: 20_000, random: true },
    { name: 'orphan-dep' },
    { name: 'orphan', deps: ['orphan-dep'] },
  ]);
  const depBase = dep!.out.slice('/nix/store/'.length);

  // U holds the dependency, pushed by Nix; anyone may read it, as with cache.nixos.org.
  const netrc = await nix.netrc(upstream.cacheUrl, upstream.writeToken);
  await nix.run('nix', ['copy', '--to', upstream.cacheUrl, dep!.out], { env: nix.withConfig([`netrc-file = ${netrc}`]) });
  await json(await api(upstream, '/api/v1/caches/main', { method: 'PATCH', body: JSON.stringify({ public: true }) }), 200);

  // D gets only the top path: Nix itself will not upload a path whose references
  // the destination lacks, so its NAR and narinfo are PUT as Nix made them.
  const up = await nixUpload(nix, top!.out);
  assert.equal((await put(downstream, up.narUrl, up.nar)).status, 201);

  const refused = await put(downstream, `${up.hashPart}.narinfo`, up.narinfo);
  assert.equal(refused.status, 409);
  assert.equal(await refused.text(), `field References: not in cache main: ${depBase}; upload references first\n`, 'no upstreams yet');

  const stranger = formatPublicKey(generateSecretKey('stranger-1').publicKey);
  await json(await putUpstreams(downstream, [{ url: upstream.cacheUrl, publicKeys: [stranger], priority: 10 }]), 200);
  const unsigned = await put(downstream, `${up.hashPart}.narinfo`, up.narinfo);
  assert.equal(unsigned.status, 409);
  assert.equal(
    await unsigned.text(),
    `field References: not in cache main: ${depBase} (nor in its upstreams ${upstream.cacheUrl}); upload references first\n`,
    'U holds it, but not signed by a key D trusts for U',
  );

  await json(await putUpstreams(downstream, [{ url: upstream.cacheUrl, publicKeys: [upstream.publicKey], priority: 10 }]), 200);
  const accepted = await put(downstream, `${up.hashPart}.narinfo`, up.narinfo);
  assert.equal(accepted.status, 201, await accepted.text());
  assert.equal((await get(downstream, `${dep!.out.slice(11, 43)}.narinfo`)).status, 404, 'the dependency is not copied to D');
  assert.match(await (await get(downstream, `${up.hashPart}.narinfo`)).text(), new RegExp(`^References: .*${depBase}`, 'm'));

  const lonely = await nixUpload(nix, orphan!.out);
  await put(downstream, lonely.narUrl, lonely.nar);
  const nowhere = await put(downstream, `${lonely.hashPart}.narinfo`, lonely.narinfo);
  assert.equal(nowhere.status, 409);
  assert.match(await nowhere.text(), new RegExp(`^field References: not in cache main: ${orphanDep!.out.slice(11)} \\(nor in its upstreams`));

  // A client with both substituters and both keys, nothing unsigned accepted.
  // D is made public too: a netrc line for 127.0.0.1 would also be sent to U.
  await json(await api(downstream, '/api/v1/caches/main', { method: 'PATCH', body: JSON.stringify({ public: true }) }), 200);
  await nix.deleteLocally([top!.out]);
  for (const path of [top!.out, dep!.out]) assert.equal(await nix.isValid(path), false, `${path} should be gone locally`);
  await nix.run('nix-store', ['--realise', top!.out], {
    env: nix.withConfig([
      `substituters = ${downstream.cacheUrl} ${upstream.cacheUrl}`,
      'require-sigs = true',
      `trusted-public-keys = ${downstream.publicKey} ${upstream.publicKey}`,
    ]),
  });
  for (const path of [top!.out, dep!.out]) assert.equal(await nix.isValid(path), true, `${path} should be substituted`);
});

function get(server: RunningLarder, path: string): Promise<Response> {
  return fetch(`${server.cacheUrl}/${path}`, { headers: { Authorization: `Bearer ${server.writeToken}` } });
}
