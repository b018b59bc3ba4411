// The server against the real nix: `nix copy --to http://…` uploads, and
// `nix-store -r` substitutes back with signatures required and only larder's
// key trusted; tokens, revocation and key rotation as Nix sees them.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { nixEnv, skipWithoutNix, type NixEnv } from '../helpers/nix-env.ts';
import { backends, type Backend } from '../helpers/backends.ts';
import { api, startLarder, type RunningLarder } from '../helpers/larder-server.ts';

async function push(nix: NixEnv, cacheUrl: string, token: string, paths: readonly string[], compression = 'zstd') {
  const netrc = await nix.netrc(cacheUrl, token);
  return nix.run('nix', ['copy', '--to', `${cacheUrl}?compression=${compression}`, ...paths], {
    env: nix.withConfig([`netrc-file = ${netrc}`]),
  });
}

async function substitute(nix: NixEnv, cacheUrl: string, token: string | undefined, keys: readonly string[], paths: readonly string[]) {
  const netrc = token === undefined ? '/dev/null' : await nix.netrc(cacheUrl, token);
  return nix.run('nix-store', ['--realise', ...paths], {
    env: nix.withConfig([
      `substituters = ${cacheUrl}`,
      'require-sigs = true',
      `trusted-public-keys = ${keys.join(' ')}`,
      `netrc-file = ${netrc}`,
    ]),
  });
}

async function createToken(server: RunningLarder, permission: string): Promise<{ token: string; id: string }> {
  const res = await api(server, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ cache: 'main', permission }) });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()) as { token: string; id: string };
}

async function roundTrip(t: import('node:test').TestContext, server: RunningLarder, compression: string) {
  const nix = await nixEnv(t);
  const built = await nix.buildClosure([
    { name: 'lib', size: 3000 },
    { name: 'bin', deps: ['lib'], size: 50_000, random: true },
    { name: 'app', deps: ['bin', 'lib'], size: 200_000 },
  ]);
  const top = built.at(-1)!.out;
  await push(nix, server.cacheUrl, server.writeToken, [top], compression);
  await nix.deleteLocally([top]);
  for (const b of built) assert.equal(await nix.isValid(b.out), false, `${b.out} should be gone locally`);
  await substitute(nix, server.cacheUrl, server.writeToken, [server.publicKey], [top]);
  for (const b of built) assert.equal(await nix.isValid(b.out), true, `${b.out} should be substituted back`);
}

/** A server on the given engines, or undefined when the test was skipped for want of a service. */
async function serverOn(t: import('node:test').TestContext, backend: Backend, args: string[] = []): Promise<RunningLarder | undefined> {
  const env = await backend.env(t);
  return env && startLarder(t, { args, env });
}

for (const backend of backends) {
  test(`${backend.name}: nix copy up and nix-store -r back, with signatures required`, async (t) => {
    if (skipWithoutNix(t)) return;
    const server = await serverOn(t, backend);
    if (!server) return;
    for (const compression of ['zstd', 'xz', 'bzip2', 'none']) {
      await t.test(`compression=${compression}`, (t) => roundTrip(t, server, compression));
    }
  });

  test(`${backend.name}: the same with --workers 2`, async (t) => {
    if (skipWithoutNix(t)) return;
    const server = await serverOn(t, backend, ['--workers', '2']);
    if (!server) return;
    await roundTrip(t, server, 'zstd');
    await roundTrip(t, server, 'xz');
  });

  test(`${backend.name}: tokens: read substitutes but cannot push, no token finds nothing, revocation is immediate`, async (t) => {
    if (skipWithoutNix(t)) return;
    const server = await serverOn(t, backend);
    if (!server) return;
    const nix = await nixEnv(t);
    const [pushed, other] = [await nix.buildClosure(nix.chain(2)), await nix.buildClosure([{ name: 'other' }])];
    await push(nix, server.cacheUrl, server.writeToken, [pushed[1]!.out]);
    const read = await createToken(server, 'read');

    await assert.rejects(push(nix, server.cacheUrl, read.token, [other[0]!.out]), /403|Forbidden|does not appear to be a binary cache/i);
    const check = await fetch(`${server.cacheUrl}/${other[0]!.out.slice(11, 43)}.narinfo`, { headers: { Authorization: `Bearer ${server.writeToken}` } });
    assert.equal(check.status, 404, 'nothing was uploaded with the read token');

    await nix.deleteLocally([pushed[1]!.out]);
    await assert.rejects(substitute(nix, server.cacheUrl, undefined, [server.publicKey], [pushed[1]!.out]));
    assert.equal(await nix.isValid(pushed[1]!.out), false, 'without a token nothing is found');

    await substitute(nix, server.cacheUrl, read.token, [server.publicKey], [pushed[1]!.out]);
    assert.equal(await nix.isValid(pushed[1]!.out), true, 'a read token substitutes');

    const revoke = await api(server, `/api/v1/tokens/${read.id}`, { method: 'DELETE' });
    assert.equal(revoke.status, 200);
    await nix.deleteLocally([pushed[1]!.out]);
    await assert.rejects(substitute(nix, server.cacheUrl, read.token, [server.publicKey], [pushed[1]!.out]));
    assert.equal(await nix.isValid(pushed[1]!.out), false, 'a revoked token finds nothing');
  });

  test(`${backend.name}: key rotation: new paths carry the new key, old paths still verify`, async (t) => {
    if (skipWithoutNix(t)) return;
    const server = await serverOn(t, backend);
    if (!server) return;
    const nix = await nixEnv(t);
    const [old] = await nix.buildClosure([{ name: 'before-rotation' }]);
    await push(nix, server.cacheUrl, server.writeToken, [old!.out]);

    const rotated = await api(server, '/api/v1/caches/main/keys/rotate', { method: 'POST' });
    assert.equal(rotated.status, 201);
    const newKey = ((await rotated.json()) as { publicKey: string }).publicKey;
    assert.notEqual(newKey, server.publicKey);
    const shown = (await (await api(server, '/api/v1/caches/main')).json()) as { publicKeys: string[] };
    assert.deepEqual(shown.publicKeys.sort(), [server.publicKey, newKey].sort(), 'both keys stay published');

    const [fresh] = await nix.buildClosure([{ name: 'after-rotation' }]);
    await push(nix, server.cacheUrl, server.writeToken, [fresh!.out]);
    await nix.deleteLocally([old!.out, fresh!.out]);

    await substitute(nix, server.cacheUrl, server.writeToken, [newKey], [fresh!.out]);
    await assert.rejects(substitute(nix, server.cacheUrl, server.writeToken, [newKey], [old!.out]), /not signed by any of the keys|required signature/);
    await substitute(nix, server.cacheUrl, server.writeToken, [server.publicKey], [old!.out]);
    assert.ok(await nix.isValid(old!.out));

    const oldName = server.publicKey.split(':')[0]!;
    assert.equal((await api(server, `/api/v1/caches/main/keys/${oldName}/retire`, { method: 'POST' })).status, 200);
    const again = await api(server, `/api/v1/caches/main/keys/${oldName}/retire`, { method: 'POST' });
    assert.equal(again.status, 409);
    assert.match(((await again.json()) as { error: string }).error, /already retired/);
    const shownAfter = (await (await api(server, '/api/v1/caches/main')).json()) as { publicKeys: string[] };
    assert.deepEqual(shownAfter.publicKeys, [newKey], 'a retired key is no longer published');
  });

  test(`${backend.name}: a new user: the lines the first start prints are enough to push and substitute`, async (t) => {
    if (skipWithoutNix(t)) return;
    const server = await serverOn(t, backend);
    if (!server) return;
    const nix = await nixEnv(t);
    assert.equal(server.nixConfLines.length, 3, server.banner);
    const netrcFile = join(nix.dir, 'netrc');
    await writeFile(netrcFile, `${server.netrcLine}\n`, { mode: 0o600 });
    // The banner names /etc/nix/netrc; this test keeps its own file instead of touching the machine's.
    const conf = server.nixConfLines.map((l) => (l.startsWith('netrc-file') ? `netrc-file = ${netrcFile}` : l));
    const pushHint = /nix copy --to '([^']+)'/.exec(server.banner)![1]!;

    const built = await nix.buildClosure(nix.chain(3));
    const top = built.at(-1)!.out;
    await nix.run('nix', ['copy', '--to', pushHint, top], { env: nix.withConfig(conf) });
    await nix.deleteLocally([top]);
    await nix.run('nix-store', ['--realise', top], { env: nix.withConfig([...conf, 'require-sigs = true']) });
    assert.ok(await nix.isValid(top));
  });
}
