// The upstream checker against real HTTP servers on 127.0.0.1: what counts as
// present (a narinfo for that path, signed by a trusted key), what is
// remembered and for how long, and that failures are neither present nor kept.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Upstream } from '../../src/index/cache-index.ts';
import { openSqliteIndex, type SqlIndex } from '../../src/index/sql-index.ts';
import { signNarInfo } from '../../src/nix/fingerprint.ts';
import { sha256 } from '../../src/nix/hash.ts';
import { formatNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { formatPublicKey, generateSecretKey, type SecretKey } from '../../src/nix/signing-key.ts';
import { UpstreamChecker, type UpstreamCheckerOptions } from '../../src/services/upstreams.ts';

const STORE_DIR = '/nix/store';

function newHashPart(): string {
  return encodeNix32(randomBytes(20));
}

/** A narinfo for `<hashPart>-<name>` signed by `keys`. */
function narinfo(hashPart: string, name: string, keys: readonly SecretKey[]): string {
  const info: NarInfo = {
    storePath: { hashPart, name },
    url: `nar/${encodeNix32(randomBytes(32))}.nar.xz`,
    compression: 'xz',
    narHash: sha256(name),
    narSize: 1000,
    references: [],
    sigs: [],
  };
  return formatNarInfo(signNarInfo(info, keys, STORE_DIR), STORE_DIR);
}

interface Route {
  status?: number;
  body?: string;
  delayMs?: number;
}

/** A binary cache that serves `routes` by hash part, counts requests, and tracks how many are in flight. */
async function fakeUpstream(t: TestContext) {
  const routes = new Map<string, Route>();
  const requests = new Map<string, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  const server = createServer(async (req, res: ServerResponse) => {
    const hashPart = /^\/([0-9a-z]{32})\.narinfo$/.exec(req.url ?? '')?.[1] ?? '';
    requests.set(hashPart, (requests.get(hashPart) ?? 0) + 1);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const route = routes.get(hashPart) ?? { status: 404 };
    if (route.delayMs) await sleep(route.delayMs);
    inFlight--;
    if (res.destroyed) return;
    res.writeHead(route.status ?? 200, { 'Content-Type': 'text/x-nix-narinfo' }).end(route.body ?? '');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    routes,
    count: (hashPart: string) => requests.get(hashPart) ?? 0,
    total: () => [...requests.values()].reduce((a, b) => a + b, 0),
    maxInFlight: () => maxInFlight,
  };
}

async function openIndex(t: TestContext, dir?: string): Promise<SqlIndex> {
  const where = dir ?? mkdtempSync(join(tmpdir(), 'larder-upstreams-'));
  if (!dir) t.after(() => rmSync(where, { recursive: true, force: true }));
  const index = await openSqliteIndex(join(where, 'index.sqlite'));
  t.after(() => index.close());
  return index;
}

async function cacheWithUpstreams(t: TestContext, upstreams: readonly Upstream[]): Promise<SqlIndex> {
  const index = await openIndex(t);
  await index.createCache({
    name: 'main',
    public: false,
    priority: 40,
    compression: 'zstd',
    mirror: false,
    createdAt: 0,
    retentionMs: null,
    maxSize: null,
    generation: 0,
  });
  await index.setUpstreams('main', upstreams);
  return index;
}

function checker(index: SqlIndex, options: Partial<UpstreamCheckerOptions> = {}): UpstreamChecker {
  return new UpstreamChecker(index, { storeDir: STORE_DIR, ...options });
}

test('present means a narinfo for that very path, signed by a key trusted for that upstream', async (t) => {
  const up = await fakeUpstream(t);
  const key = generateSecretKey('up-1');
  const forger = generateSecretKey('up-1'); // same name, other key: a bad signature
  const stranger = generateSecretKey('elsewhere-1');
  const h = Object.fromEntries(
    ['good', 'unsigned', 'forged', 'untrusted', 'otherPath', 'garbage', 'missing', 'forbidden', 'both'].map((n) => [n, newHashPart()]),
  );
  up.routes.set(h.good!, { body: narinfo(h.good!, 'good', [key]) });
  up.routes.set(h.unsigned!, { body: narinfo(h.unsigned!, 'unsigned', []) });
  up.routes.set(h.forged!, { body: narinfo(h.forged!, 'forged', [forger]) });
  up.routes.set(h.untrusted!, { body: narinfo(h.untrusted!, 'untrusted', [stranger]) });
  up.routes.set(h.otherPath!, { body: narinfo(h.good!, 'good', [key]) });
  up.routes.set(h.garbage!, { body: 'this is not a narinfo\n' });
  up.routes.set(h.forbidden!, { status: 403 });
  up.routes.set(h.both!, { body: narinfo(h.both!, 'both', [stranger, key]) });

  const index = await cacheWithUpstreams(t, [{ url: up.url, publicKeys: [formatPublicKey(key.publicKey)], priority: 40 }]);
  const found = await checker(index).findPresent('main', Object.values(h));
  assert.deepEqual(found.upstreams, [up.url]);
  assert.deepEqual(new Set(found.present), new Set([h.good, h.both]));
  for (const hashPart of Object.values(h)) assert.equal(up.count(hashPart), 1);
});

test('answers are remembered in memory and in the index; absences only briefly', async (t) => {
  const up = await fakeUpstream(t);
  const key = generateSecretKey('up-1');
  const [good, missing] = [newHashPart(), newHashPart()];
  up.routes.set(good, { body: narinfo(good, 'good', [key]) });
  const index = await cacheWithUpstreams(t, [{ url: up.url, publicKeys: [formatPublicKey(key.publicKey)], priority: 40 }]);
  const options = { absentTtlMs: 300 };
  const first = checker(index, options);

  assert.deepEqual([...(await first.findPresent('main', [good, missing])).present], [good]);
  assert.deepEqual([...(await first.findPresent('main', [good, missing, good])).present], [good]);
  assert.equal(up.total(), 2, 'the second query made no request');

  // Another worker or replica: nothing in its memory, the index answers.
  const second = checker(index, options);
  assert.deepEqual([...(await second.findPresent('main', [missing, good])).present], [good]);
  assert.equal(up.total(), 2, 'the index answered');

  await sleep(350);
  up.routes.set(missing, { body: narinfo(missing, 'pushed-since', [key]) });
  assert.deepEqual(new Set((await second.findPresent('main', [good, missing])).present), new Set([good, missing]));
  assert.equal(up.count(missing), 2, 'the absence expired and was asked again');
  assert.equal(up.count(good), 1, 'the presence did not');
});

test('an upstream that times out, fails or cannot be reached is not present, and that is not remembered', async (t) => {
  const up = await fakeUpstream(t);
  const key = generateSecretKey('up-1');
  const [slow, broken, unavailable] = [newHashPart(), newHashPart(), newHashPart()];
  up.routes.set(slow, { body: narinfo(slow, 'slow', [key]), delayMs: 2000 });
  up.routes.set(broken, { status: 500 });
  up.routes.set(unavailable, { status: 503 });
  const closed = createServer().listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  closed.close();
  const publicKeys = [formatPublicKey(key.publicKey)];
  const index = await cacheWithUpstreams(t, [
    { url: up.url, publicKeys, priority: 10 },
    { url: deadUrl, publicKeys, priority: 20 },
  ]);
  const check = checker(index, { timeoutMs: 200 });

  const started = Date.now();
  const found = await check.findPresent('main', [slow, broken, unavailable]);
  assert.deepEqual([...found.present], []);
  assert.ok(Date.now() - started < 1500, 'the slow upstream was not waited for');
  await check.findPresent('main', [slow, broken, unavailable]);
  for (const hashPart of [slow, broken, unavailable]) assert.equal(up.count(hashPart), 2, 'asked again: failures are not kept');
  assert.deepEqual(await index.getUpstreamPresence('main', [slow, broken, unavailable]), []);
});

test('upstreams are asked in priority order, each only for what the ones before lack', async (t) => {
  const [first, second] = [await fakeUpstream(t), await fakeUpstream(t)];
  const [k1, k2] = [generateSecretKey('first-1'), generateSecretKey('second-1')];
  const [both, onlySecond, nowhere] = [newHashPart(), newHashPart(), newHashPart()];
  first.routes.set(both, { body: narinfo(both, 'both', [k1]) });
  second.routes.set(both, { body: narinfo(both, 'both', [k2]) });
  second.routes.set(onlySecond, { body: narinfo(onlySecond, 'second', [k2]) });
  const index = await cacheWithUpstreams(t, [
    { url: second.url, publicKeys: [formatPublicKey(k2.publicKey)], priority: 50 },
    { url: first.url, publicKeys: [formatPublicKey(k1.publicKey)], priority: 10 },
  ]);

  const found = await checker(index).findPresent('main', [both, onlySecond, nowhere]);
  assert.deepEqual(found.upstreams, [first.url, second.url]);
  assert.deepEqual(new Set(found.present), new Set([both, onlySecond]));
  assert.deepEqual([first.count(both), first.count(onlySecond), first.count(nowhere)], [1, 1, 1]);
  assert.deepEqual([second.count(both), second.count(onlySecond), second.count(nowhere)], [0, 1, 1]);
});

test('many paths are asked concurrently, never more at once than the limit', async (t) => {
  const up = await fakeUpstream(t);
  const key = generateSecretKey('up-1');
  const hashParts = Array.from({ length: 24 }, () => newHashPart());
  for (const [i, hashPart] of hashParts.entries()) up.routes.set(hashPart, { body: narinfo(hashPart, `p${i}`, [key]), delayMs: 50 });
  const index = await cacheWithUpstreams(t, [{ url: up.url, publicKeys: [formatPublicKey(key.publicKey)], priority: 40 }]);

  const started = Date.now();
  const found = await checker(index, { concurrency: 4 }).findPresent('main', hashParts);
  assert.equal(found.present.size, 24);
  assert.equal(up.maxInFlight(), 4);
  assert.ok(Date.now() - started < 24 * 50, 'not one after another');
});

test('checks running at once share their requests', async (t) => {
  const up = await fakeUpstream(t);
  const key = generateSecretKey('up-1');
  const hashParts = Array.from({ length: 5 }, () => newHashPart());
  for (const hashPart of hashParts) up.routes.set(hashPart, { body: narinfo(hashPart, 'p', [key]), delayMs: 50 });
  const index = await cacheWithUpstreams(t, [{ url: up.url, publicKeys: [formatPublicKey(key.publicKey)], priority: 40 }]);
  const check = checker(index);

  const results = await Promise.all([check.findPresent('main', hashParts), check.findPresent('main', hashParts.slice(2))]);
  assert.deepEqual(results.map((r) => r.present.size), [5, 3]);
  assert.equal(up.total(), 5);
});

test('replacing an upstream’s keys forgets what the old keys vouched for', async (t) => {
  const up = await fakeUpstream(t);
  const [oldKey, newKey] = [generateSecretKey('old-1'), generateSecretKey('new-1')];
  const path = newHashPart();
  up.routes.set(path, { body: narinfo(path, 'p', [oldKey]) });
  const index = await cacheWithUpstreams(t, [{ url: up.url, publicKeys: [formatPublicKey(oldKey.publicKey)], priority: 40 }]);
  const check = checker(index);
  assert.equal((await check.findPresent('main', [path])).present.size, 1);

  await index.setUpstreams('main', [{ url: up.url, publicKeys: [formatPublicKey(newKey.publicKey)], priority: 40 }]);
  assert.equal((await check.findPresent('main', [path])).present.size, 0);
  assert.equal((await checker(index).findPresent('main', [path])).present.size, 0);
  assert.equal(up.count(path), 2, 'asked again under the new key; the answer was then remembered');
});

test('a cache without upstreams asks nothing', async (t) => {
  const index = await cacheWithUpstreams(t, []);
  const found = await checker(index).findPresent('main', [newHashPart()]);
  assert.deepEqual(found, { upstreams: [], present: new Set() });
});
