// The pull-through proxy against real parts: the upstream is another larder
// that Nix pushed to (as cache.nixos.org is a cache Hydra pushed to), reached
// through a gate that counts requests and fails on demand; the clients are the
// real Nix with signatures required, and plain HTTP where a byte count matters.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { formatPublicKey, generateSecretKey } from '../../src/nix/signing-key.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { backends } from '../helpers/backends.ts';
import { HttpGate } from '../helpers/http-gate.ts';
import { larder } from '../helpers/larder-cli.ts';
import { api, startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix, type NixEnv } from '../helpers/nix-env.ts';

const hashPartOf = (path: string) => path.slice('/nix/store/'.length, '/nix/store/'.length + 32);

async function ok(res: Response, status = 200): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  return text;
}

/** The upstream: a public larder cache Nix pushed `paths` to. */
async function upstreamWith(t: TestContext, nix: NixEnv, paths: readonly string[]): Promise<RunningLarder> {
  const upstream = await startLarder(t, { env: { LARDER_KEY_NAME_PREFIX: 'upstream-' } });
  const netrc = await nix.netrc(upstream.cacheUrl, upstream.writeToken);
  await nix.run('nix', ['copy', '--to', upstream.cacheUrl, ...paths], { env: nix.withConfig([`netrc-file = ${netrc}`]) });
  await ok(await api(upstream, '/api/v1/caches/main', { method: 'PATCH', body: JSON.stringify({ public: true }) }));
  return upstream;
}

/** Makes `proxy`'s cache `main` a mirror of the upstream behind `gate`, trusting `keys` for it. */
async function mirrorOf(proxy: RunningLarder, gate: HttpGate, keys: readonly string[]): Promise<void> {
  await ok(await api(proxy, '/api/v1/caches/main', { method: 'PATCH', body: JSON.stringify({ mirror: true }) }));
  const upstreams = [{ url: `${gate.url}/main`, publicKeys: keys, priority: 10 }];
  await ok(await api(proxy, '/api/v1/caches/main/upstreams', { method: 'PUT', body: JSON.stringify(upstreams) }));
}

function get(server: RunningLarder, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.cacheUrl}/${path}`, { ...init, headers: { Authorization: `Bearer ${server.writeToken}` } });
}

const PROXY_ENV = { LARDER_KEY_NAME_PREFIX: 'proxy-', LARDER_MIRROR_TIMEOUT: '1s', LARDER_MIRROR_NEGATIVE_TTL: '1s' };

test('Nix substitutes a closure that lives only upstream; the next client costs the upstream nothing', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const [dep, top] = await nix.buildClosure([
    { name: 'dep', size: 5000 },
    { name: 'top', deps: ['dep'], size: 300_000, random: true },
  ]);
  const upstream = await upstreamWith(t, nix, [top!.out]);
  const gate = await HttpGate.start(upstream.url);
  t.after(() => gate.close());
  const proxy = await startLarder(t, { env: PROXY_ENV });
  await mirrorOf(proxy, gate, [upstream.publicKey]);
  const netrc = await nix.netrc(proxy.cacheUrl, proxy.writeToken);
  const client = (keys: string) =>
    nix.withConfig([`substituters = ${proxy.cacheUrl}`, 'require-sigs = true', `trusted-public-keys = ${keys}`, `netrc-file = ${netrc}`]);

  await nix.deleteLocally([top!.out]);
  // Trusting the proxy's key alone: it signed what it verified upstream.
  await nix.run('nix-store', ['--realise', top!.out], { env: client(proxy.publicKey) });
  for (const path of [top!.out, dep!.out]) assert.equal(await nix.isValid(path), true, `${path} substituted`);
  const narinfos = gate.count(/\.narinfo$/);
  assert.equal(gate.count(/\/nar\//), 2, 'each NAR fetched from the upstream once');

  const served = await ok(await get(proxy, `${hashPartOf(top!.out)}.narinfo`));
  const signers = [...served.matchAll(/^Sig: ([^:]+):/gm)].map((m) => m[1]).sort();
  assert.deepEqual(signers, [/^Sig: ([^:]+):/m.exec(await ok(await get(upstream, `${hashPartOf(top!.out)}.narinfo`)))![1], proxy.publicKey.split(':')[0]].sort());
  assert.match(served, /^URL: nar\/[0-9a-z]{52}\.nar\.xz$/m, 'the NAR named by its FileHash, here');

  // The second client trusts only the upstream's key: its signature was kept.
  await nix.deleteLocally([top!.out]);
  await nix.run('nix-store', ['--realise', top!.out], { env: client(upstream.publicKey) });
  for (const path of [top!.out, dep!.out]) assert.equal(await nix.isValid(path), true, `${path} substituted again`);
  assert.equal(gate.count(/\.narinfo$/), narinfos, 'no narinfo asked upstream again');
  assert.equal(gate.count(/\/nar\//), 2, 'no NAR fetched upstream again');

  // Counted: two upstream hits; both NARs fetched once and then served once from storage.
  let fileSizes = 0;
  for (const path of [top!.out, dep!.out]) fileSizes += Number(/^FileSize: (\d+)$/m.exec(await ok(await get(proxy, `${hashPartOf(path)}.narinfo`)))![1]);
  const metrics = await ok(await fetch(`${proxy.url}/metrics`));
  const metric = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
  assert.equal(metric('larder_upstream_lookups_total\\{cache="main",outcome="hit"\\}'), 2);
  assert.equal(metric('larder_upstream_fetched_bytes_total\\{cache="main"\\}'), fileSizes);
  assert.equal(metric('larder_upstream_saved_bytes_total\\{cache="main"\\}'), fileSizes);

  // Kept like a pushed path: in the cache's listing of what it holds, and whole by `larder verify`
  // (NARs rehashed; the upstream's signature vouches for references the cache does not hold).
  const missing = await api(proxy, '/api/v1/caches/main/missing', { method: 'POST', body: JSON.stringify({ paths: [top!.out, dep!.out] }) });
  assert.deepEqual(JSON.parse(await ok(missing)), { missing: [] });
  const verified = JSON.parse(await larder(['verify', '--data', proxy.dataDir, '--json'])) as { problems: unknown[]; caches: Array<{ paths: number }> };
  assert.deepEqual(verified.problems, []);
  assert.equal(verified.caches[0]!.paths, 2);
});

for (const backend of backends) {
  test(`two clients asking for one NAR at once cause one upstream download (${backend.name})`, async (t) => {
    if (skipWithoutNix(t)) return;
    const env = await backend.env(t);
    if (!env) return;
    const nix = await nixEnv(t);
    const [big] = await nix.buildClosure([{ name: 'big', size: 6 * 2 ** 20, random: true }]);
    const upstream = await upstreamWith(t, nix, [big!.out]);
    const gate = await HttpGate.start(upstream.url);
    t.after(() => gate.close());
    // Two replicas on one index and store for the scale-out engine; one server twice otherwise.
    const a = await startLarder(t, { env: { ...env, ...PROXY_ENV } });
    // A replica prints no first-start token: it takes the one A made.
    const b = backend === backends[0] ? a : { ...(await startLarder(t, { env: { ...env, ...PROXY_ENV }, dataDir: a.dataDir })), writeToken: a.writeToken };
    await mirrorOf(a, gate, [upstream.publicKey]);

    const narinfo = await ok(await get(a, `${hashPartOf(big!.out)}.narinfo`));
    const url = /^URL: (\S+)$/m.exec(narinfo)![1]!;
    const fileHash = /^FileHash: sha256:(\S+)$/m.exec(narinfo)![1]!;
    // HEAD tells the size from the narinfo without fetching anything.
    const head = await get(a, url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), /^FileSize: (\d+)$/m.exec(narinfo)![1]);
    assert.equal(gate.count(/\/nar\//), 0);
    gate.narChunkDelayMs = 2; // about 8 MB/s: the download lasts while the second client comes
    const download = async (server: RunningLarder) => {
      const res = await get(server, url);
      assert.equal(res.status, 200);
      return encodeNix32(createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest());
    };
    const first = download(a);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const hashes = await Promise.all([first, download(b)]);
    assert.deepEqual(hashes, [fileHash, fileHash], 'both received the verified bytes');
    assert.equal(gate.count(/\/nar\//), 1, 'one upstream download for both');

    gate.narChunkDelayMs = 0;
    assert.equal(await download(b), fileHash);
    assert.equal(gate.count(/\/nar\//), 1, 'later downloads come from storage');
  });
}

test('what fails verification upstream is not served and not kept', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const [path] = await nix.buildClosure([{ name: 'victim', size: 100_000, random: true }]);
  const upstream = await upstreamWith(t, nix, [path!.out]);
  const gate = await HttpGate.start(upstream.url);
  t.after(() => gate.close());
  const proxy = await startLarder(t, { env: PROXY_ENV });
  const narinfoPath = `${hashPartOf(path!.out)}.narinfo`;

  await t.test('a narinfo signed by a key not trusted for the upstream is a 404', async () => {
    await mirrorOf(proxy, gate, [formatPublicKey(generateSecretKey('stranger-1').publicKey)]);
    await ok(await get(proxy, narinfoPath), 404);
  });

  await t.test('a narinfo whose signature does not match its contents is a 404', async () => {
    await mirrorOf(proxy, gate, [upstream.publicKey]);
    gate.mode = 'tamper-narinfo';
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the 1 s negative TTL of the stranger's answer
    await ok(await get(proxy, narinfoPath), 404);
    gate.mode = 'forward';
  });

  await t.test('a corrupted NAR breaks the download, is not kept, and Nix installs nothing', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const narinfo = await ok(await get(proxy, narinfoPath));
    const url = /^URL: (\S+)$/m.exec(narinfo)![1]!;
    gate.mode = 'corrupt-nar';
    const res = await get(proxy, url);
    // Found out before the first byte reached the client: a 502; after: a cut connection, the
    // last byte withheld. Never the whole file.
    if (res.status === 200) await assert.rejects(res.arrayBuffer());
    else assert.equal(res.status, 502, await res.text());

    const netrc = await nix.netrc(proxy.cacheUrl, proxy.writeToken);
    await nix.deleteLocally([path!.out]);
    await assert.rejects(
      nix.run('nix-store', ['--realise', path!.out], {
        env: nix.withConfig([`substituters = ${proxy.cacheUrl}`, 'require-sigs = true', `trusted-public-keys = ${proxy.publicKey}`, `netrc-file = ${netrc}`, 'download-attempts = 2', 'max-jobs = 0']),
      }),
    );
    assert.equal(await nix.isValid(path!.out), false, 'nothing installed');

    gate.mode = 'forward';
    const before = gate.count(/\/nar\//);
    const good = await get(proxy, url);
    assert.equal(good.status, 200);
    const body = Buffer.from(await good.arrayBuffer());
    assert.equal(`sha256:${encodeNix32(createHash('sha256').update(body).digest())}`, /^FileHash: (\S+)$/m.exec(narinfo)![1]);
    assert.equal(gate.count(/\/nar\//), before + 1, 'fetched again: the corrupted copy was not kept');
  });
});

test('an upstream that is down or hangs costs a fast 404; what the cache holds is still served', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const [held, elsewhere] = await nix.buildClosure([
    { name: 'held', size: 20_000, random: true },
    { name: 'elsewhere', size: 20_000, random: true },
  ]);
  const upstream = await upstreamWith(t, nix, [held!.out, elsewhere!.out]);
  const gate = await HttpGate.start(upstream.url);
  t.after(() => gate.close());
  const proxy = await startLarder(t, { env: PROXY_ENV });
  await mirrorOf(proxy, gate, [upstream.publicKey]);
  const heldInfo = await ok(await get(proxy, `${hashPartOf(held!.out)}.narinfo`));
  const heldUrl = /^URL: (\S+)$/m.exec(heldInfo)![1]!;
  await (await get(proxy, heldUrl)).arrayBuffer();

  const timed = async (path: string) => {
    const started = performance.now();
    const res = await get(proxy, path);
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  };
  const netrc = await nix.netrc(proxy.cacheUrl, proxy.writeToken);
  const substituteHeld = async () => {
    await nix.deleteLocally([held!.out]);
    await nix.run('nix-store', ['--realise', held!.out], {
      env: nix.withConfig([`substituters = ${proxy.cacheUrl}`, 'require-sigs = true', `trusted-public-keys = ${proxy.publicKey}`, `netrc-file = ${netrc}`]),
    });
    assert.equal(await nix.isValid(held!.out), true);
  };

  for (const mode of ['hang', 'down'] as const) {
    await t.test(`upstream ${mode}`, async () => {
      if (mode === 'hang') gate.mode = 'hang';
      else await gate.close();
      // The deadline is 1 s (mirror.timeout); a hang must not hold the client longer, nor become a 5xx.
      const first = await timed(`${hashPartOf(elsewhere!.out)}.narinfo`);
      assert.equal(first.status, 404);
      assert.ok(first.ms < 5000, `answered after ${Math.round(first.ms)} ms`);
      assert.equal((await timed(`${hashPartOf(elsewhere!.out)}.narinfo`)).status, 404);
      assert.equal((await timed(`${hashPartOf(held!.out)}.narinfo`)).status, 200);
      await substituteHeld();
      if (mode === 'hang') gate.mode = 'forward';
      else await gate.open();
    });
  }

  await t.test('back up: the path is found again once the upstream answers', async () => {
    await new Promise((resolve) => setTimeout(resolve, 5100)); // the upstream's back-off after failing
    assert.equal((await timed(`${hashPartOf(elsewhere!.out)}.narinfo`)).status, 200);
  });
});
