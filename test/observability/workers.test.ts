// With --workers N each worker counts what it serves; /metrics, whichever
// worker the connection lands on, must show the sum over all of them, and the
// caches' contents once (read by the primary), not once per worker.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { larder } from '../helpers/larder-cli.ts';
import { nixEnv, skipWithoutNix } from '../helpers/nix-env.ts';
import { exchange, logLine, startObservedLarder } from './observed-server.ts';
import { samplesOf, seriesKeys, total } from './prometheus-text.ts';
import { randomHashPart } from './uploads.ts';

test('--workers 2: every worker answers /metrics with the sum of both; a push with the CLI is counted', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startObservedLarder(t, { args: ['--workers', '2'] });
  const lines = () => server.logLines();
  const pidsOf = (route: string) => new Set(lines().filter((l) => l.route === route).map((l) => l.pid));

  // Connections in batches until both workers have answered some (the kernel picks which one accepts).
  const misses = 10;
  for (let i = 0; i < misses; i++) assert.equal((await exchange(`${server.cacheUrl}/${randomHashPart()}.narinfo`, { headers: { Authorization: `Bearer ${server.writeToken}` } })).status, 404);
  let health = 0;
  while (pidsOf('health').size < 2 && health < 600) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => exchange(`${server.url}/healthz`)));
    assert.ok(batch.every((r) => r.status === 200));
    health += batch.length;
    await logLine(server, () => lines().filter((l) => l.route === 'health').length === health);
  }
  assert.equal(pidsOf('health').size, 2, `both workers answered within ${health} connections`);

  const nix = await nixEnv(t);
  const built = await nix.buildClosure(nix.chain(3));
  const out = await larder(['push', '--json', server.cacheUrl, built[2]!.out], { ...nix.env, LARDER_TOKEN: server.writeToken });
  const summary = JSON.parse(out.trim().split('\n').at(-1)!) as { pushed: number; bytes: number };
  assert.equal(summary.pushed, 3);
  await logLine(server, () => lines().filter((l) => l.method === 'PUT' && l.status === 201).length === 6);

  // Scrape until each worker has answered at least one; every answer must show the sums.
  let scrapes = 0;
  while (pidsOf('metrics').size < 2 && scrapes < 100) {
    scrapes++;
    const samples = await server.scrape();
    const keys = seriesKeys(samples);
    assert.equal(new Set(keys).size, keys.length, 'each series once');
    assert.equal(total(samples, 'larder_http_requests_total', { route: 'health', status: '200' }), health);
    assert.equal(total(samples, 'larder_narinfo_lookups_total', { cache: 'main', result: 'miss' }), misses);
    assert.equal(total(samples, 'larder_http_requests_total', { method: 'PUT', route: 'nar', cache: 'main', status: '201' }), 3);
    assert.equal(total(samples, 'larder_http_requests_total', { method: 'PUT', route: 'narinfo', cache: 'main', status: '201' }), 3);
    assert.equal(total(samples, 'larder_http_request_duration_seconds_count', { route: 'health' }), health);
    // Read once by the primary after the push: the three paths, not three per worker.
    assert.deepEqual(samplesOf(samples, 'larder_cache_paths').map((s) => [s.labels.cache, s.value]), [['main', 3]]);
    assert.deepEqual(samplesOf(samples, 'larder_cache_nar_files').map((s) => [s.labels.cache, s.value]), [['main', 3]]);
    assert.equal(samplesOf(samples, 'process_resident_memory_bytes').length, 1);
    assert.ok(total(samples, 'process_resident_memory_bytes') > 0);
    await logLine(server, () => lines().filter((l) => l.route === 'metrics').length === scrapes);
  }
  assert.equal(pidsOf('metrics').size, 2, `both workers answered /metrics within ${scrapes} scrapes`);
  t.diagnostic(`${health} health checks and ${scrapes} scrapes until both workers had answered each`);

  // The push's requests: logged with the token's label, never the token.
  const puts = lines().filter((l) => l.method === 'PUT');
  assert.equal(puts.length, 6);
  assert.ok(puts.every((l) => l.token === 'first-start write' && typeof l.tokenId === 'string'));
  const sent = puts.filter((l) => l.route === 'nar').reduce((sum, l) => sum + (l.bytesReceived as number), 0);
  assert.ok(sent > summary.bytes, `the NAR uploads' ${sent} bytes received include the ${summary.bytes} bytes pushed`);
  assert.ok(!server.stdout().slice(server.banner.length).includes(server.writeToken));
});
