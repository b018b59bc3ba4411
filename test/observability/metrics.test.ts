// /metrics and the request log of a real `larder serve`, after real traffic:
// uploads (accepted and refused for each reason), narinfo hits and misses, a
// NAR download and one the client cuts short, garbage collection. Counters are
// compared with what the test did; byte counters with what the client's own
// socket wrote and read; log lines are parsed as JSON and carry no token.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ROUTES } from '../../src/observability/route.ts';
import { UPLOAD_REJECTION_REASONS } from '../../src/services/telemetry.ts';
import { exchange, logLine, startObservedLarder, type Exchange, type ObservedLarder } from './observed-server.ts';
import { samplesOf, seriesKeys, total, type Sample } from './prometheus-text.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { makeUpload, randomHashPart, sha256 } from './uploads.ts';

/** A download the client abandons after its first chunk; what its socket wrote and read by then. */
function abandonedDownload(url: string, headers: Record<string, string>): Promise<{ clientWrote: number; clientRead: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      res.on('error', () => {});
      res.once('data', () => {
        const socket = res.socket;
        socket.once('close', () => resolve({ clientWrote: socket.bytesWritten, clientRead: socket.bytesRead }));
        socket.destroy();
      });
    });
    req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
    req.end();
  });
}

/** Scrapes until `ready` holds (the cache contents are read from the index at most every 10 s). */
async function scrapeUntil(server: ObservedLarder, ready: (samples: Sample[]) => boolean, timeoutMs = 40_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const samples = await server.scrape();
    if (ready(samples)) return samples;
    if (Date.now() > deadline) throw new Error(`metrics never got there: ${seriesKeys(samples.filter((s) => s.name.startsWith('larder_cache'))).join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const requestsOf = (samples: Sample[], labels: Record<string, string>) => total(samples, 'larder_http_requests_total', labels);

test('one process: requests, bytes, narinfo hits and misses, refused uploads by reason, GC and cache contents; a JSON log line per request', async (t) => {
  const server = await startObservedLarder(t);
  const first = await server.scrape();
  assert.equal(samplesOf(first, 'larder_http_requests_total').length, 0, 'a fresh server has answered nothing yet');
  assert.equal(total(first, 'larder_cache_paths', { cache: 'main' }), 0);
  assert.equal(samplesOf(first, 'larder_cache_paths', { cache: 'main' }).length, 1);

  const created = await fetch(`${server.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ cache: 'main', permission: 'write', label: 'ci-runner' }),
  });
  assert.equal(created.status, 201);
  const { token, id: tokenId } = (await created.json()) as { token: string; id: string };
  const bearer = { Authorization: `Bearer ${token}` };
  const basic = { Authorization: `Basic ${Buffer.from(`nix:${token}`).toString('base64')}` };
  const at = (path: string) => `${server.cacheUrl}/${path}`;
  const exchanges: { method: string; path: string; route: string; exchange: Exchange }[] = [];
  const send = async (route: string, path: string, options: { method?: string; headers: Record<string, string>; body?: Uint8Array | string }, status: number) => {
    const done = await exchange(at(path), options);
    assert.equal(done.status, status, `${options.method ?? 'GET'} ${path}: ${done.body.toString()}`);
    exchanges.push({ method: options.method ?? 'GET', path, route, exchange: done });
    return done;
  };

  // Accepted uploads: a small zstd path with its narinfo, and a 32 MiB uncompressed NAR to download later.
  const small = await makeUpload('small', 'hello, metrics');
  const big = await makeUpload('big', randomBytes(32 * 2 ** 20), { compressed: false });
  await send('nar', small.url, { method: 'PUT', headers: bearer, body: small.file }, 201);
  await send('narinfo', `${small.hashPart}.narinfo`, { method: 'PUT', headers: bearer, body: small.narinfo() }, 201);
  await send('nar', big.url, { method: 'PUT', headers: bearer, body: big.file }, 201);

  // Refused uploads, one for each reason a client can cause with a small body.
  const other = await makeUpload('other', 'other content');
  const notNar = Buffer.from('not a NAR at all');
  const elsewhere = randomHashPart();
  const refusals: [reason: string, route: string, path: string, body: Uint8Array | string, status: number][] = [
    ['hash', 'nar', `nar/${encodeNix32(sha256(Buffer.from('something else')))}.nar.zst`, other.file, 422],
    ['compression', 'nar', other.url.replace('.zst', '.lz4'), other.file, 415],
    ['grammar', 'nar', `nar/${encodeNix32(sha256(notNar))}.nar`, notNar, 400],
    ['malformed', 'narinfo', `${other.hashPart}.narinfo`, 'StorePath: nonsense\n', 400],
    ['nar-missing', 'narinfo', `${other.hashPart}.narinfo`, other.narinfo(), 409],
    ['size', 'narinfo', `${small.hashPart}.narinfo`, small.narinfo({ NarSize: String(small.nar.length + 8) }), 422],
    [
      'reference-missing',
      'narinfo',
      `${elsewhere}.narinfo`,
      small.narinfo({ StorePath: `/nix/store/${elsewhere}-small`, References: `${randomHashPart()}-absent` }),
      409,
    ],
    ['conflict', 'narinfo', `${small.hashPart}.narinfo`, small.narinfo({ References: `${small.hashPart}-small` }), 409],
  ];
  for (const [, route, path, body, status] of refusals) await send(route, path, { method: 'PUT', headers: bearer, body }, status);

  // Reads: a narinfo hit with Basic auth (as Nix sends from netrc), a miss, a miss in a cache that does not exist.
  await send('narinfo', `${small.hashPart}.narinfo`, { headers: basic }, 200);
  await send('narinfo', `${randomHashPart()}.narinfo`, { headers: bearer }, 404);
  const noCache = await exchange(`${server.url}/no-such-cache/${randomHashPart()}.narinfo`);
  assert.equal(noCache.status, 404);
  const fullNar = await send('nar', small.url, { headers: bearer }, 200);
  assert.deepEqual(fullNar.body, small.file);
  const cut = await abandonedDownload(at(big.url), bearer);

  // Every request so far has its line (the first scrape, the token, the exchanges, the two others).
  const answered = 2 + exchanges.length + 2;
  await logLine(server, () => server.logLines().length >= answered);
  assert.equal(server.logLines().length, answered);
  const cutLine = server.logLines().find((l) => l.aborted === true)!;
  assert.ok(cutLine, 'the abandoned download is logged as aborted');
  const after = await server.scrape();

  // Requests by method, route, cache and status.
  assert.equal(requestsOf(after, { method: 'PUT', route: 'nar', cache: 'main', status: '201' }), 2);
  assert.equal(requestsOf(after, { method: 'PUT', route: 'narinfo', cache: 'main', status: '201' }), 1);
  assert.equal(requestsOf(after, { method: 'PUT', route: 'narinfo', cache: 'main', status: '409' }), 3);
  assert.equal(requestsOf(after, { method: 'GET', route: 'narinfo', cache: 'main', status: '200' }), 1);
  assert.equal(requestsOf(after, { method: 'GET', route: 'narinfo', cache: 'main', status: '404' }), 1);
  assert.equal(requestsOf(after, { method: 'GET', route: 'narinfo', cache: '', status: '404' }), 1, 'an unknown cache is not a label');
  assert.equal(requestsOf(after, { method: 'GET', route: 'nar', cache: 'main', status: '200' }), 2, 'the full download and the abandoned one');
  assert.equal(requestsOf(after, { method: 'POST', route: 'api', status: '201' }), 1);
  assert.equal(requestsOf(after, { method: 'GET', route: 'metrics', status: '200' }), 1);
  for (const s of samplesOf(after, 'larder_http_requests_total')) {
    assert.ok((ROUTES as readonly string[]).includes(s.labels.route!), s.labels.route);
    assert.ok(['', 'main'].includes(s.labels.cache!), `cache label ${s.labels.cache}`);
  }
  assert.equal(total(after, 'larder_http_aborted_requests_total', { route: 'nar', cache: 'main' }), 1);
  assert.equal(total(after, 'larder_http_aborted_requests_total'), 1);

  // narinfo hit and miss per existing cache.
  assert.deepEqual(
    samplesOf(after, 'larder_narinfo_lookups_total').map((s) => [s.labels.cache, s.labels.result, s.value]).sort(),
    [
      ['main', 'hit', 1],
      ['main', 'miss', 1],
    ],
  );

  // Refused uploads: exactly one per reason caused, nothing else.
  assert.deepEqual(
    samplesOf(after, 'larder_upload_rejections_total').map((s) => [s.labels.cache, s.labels.reason, s.value]).sort(),
    refusals.map(([reason]) => ['main', reason, 1]).sort(),
  );
  assert.ok(refusals.every(([reason]) => (UPLOAD_REJECTION_REASONS as readonly string[]).includes(reason)));

  // Bytes: for each request on its own connection, what the client's socket wrote is what the server
  // counted as received, and what the client read is what it counted as sent.
  const lines = server.logLines();
  for (const { method, path, exchange: done } of exchanges) {
    const line = lines.find((l) => l.method === method && l.url === `/main/${path}` && l.status === done.status);
    assert.ok(line, `the log line of ${method} ${path}`);
    assert.deepEqual([line.bytesReceived, line.bytesSent], [done.clientWrote, done.clientRead], `${method} ${path}: bytes received and sent`);
  }
  const byRoute = (route: string, field: 'bytesSent' | 'bytesReceived') =>
    lines.filter((l) => l.route === route && l.cache === 'main').reduce((sum, l) => sum + (l[field] as number), 0);
  for (const route of ['nar', 'narinfo']) {
    assert.equal(total(after, 'larder_http_sent_bytes_total', { route, cache: 'main' }), byRoute(route, 'bytesSent'), `${route} sent`);
    assert.equal(total(after, 'larder_http_received_bytes_total', { route, cache: 'main' }), byRoute(route, 'bytesReceived'), `${route} received`);
  }
  const received = (route: string) => exchanges.filter((e) => e.route === route).reduce((sum, e) => sum + e.exchange.clientWrote, 0);
  assert.equal(total(after, 'larder_http_received_bytes_total', { route: 'nar', cache: 'main' }), received('nar') + cut.clientWrote, 'every byte uploaded');
  assert.ok(total(after, 'larder_http_received_bytes_total', { route: 'nar', cache: 'main' }) > 32 * 2 ** 20);
  // The abandoned download: at least what the client got, less than the whole NAR.
  assert.equal(cutLine.status, 200);
  assert.ok((cutLine.bytesSent as number) >= cut.clientRead, `${cutLine.bytesSent} sent, ${cut.clientRead} read`);
  assert.ok((cutLine.bytesSent as number) < big.file.length, `${cutLine.bytesSent} sent of ${big.file.length}`);

  // Latency histograms: every answered request observed once, buckets cumulative.
  const narinfoGets = { method: 'GET', route: 'narinfo', cache: 'main' };
  assert.equal(total(after, 'larder_http_request_duration_seconds_count', narinfoGets), 2);
  const buckets = samplesOf(after, 'larder_http_request_duration_seconds_bucket', narinfoGets);
  assert.equal(buckets.length, 17);
  assert.equal(buckets.find((b) => b.labels.le === '+Inf')!.value, 2);
  assert.ok(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value));
  assert.ok(total(after, 'larder_http_request_duration_seconds_sum', narinfoGets) > 0);
  assert.equal(total(after, 'larder_http_request_duration_seconds_count', { method: 'PUT', route: 'nar', cache: 'main' }), 5);

  // What the cache holds, from the index (read at most every 10 s, so the first scrape may be older).
  const held = await scrapeUntil(server, (s) => total(s, 'larder_cache_paths', { cache: 'main' }) === 1);
  assert.equal(total(held, 'larder_cache_nar_files', { cache: 'main' }), 2);
  assert.equal(total(held, 'larder_cache_nar_bytes', { cache: 'main' }), small.file.length + big.file.length);
  assert.equal(total(held, 'larder_cache_stats_up'), 1);

  // Garbage collection under a 1-byte quota evicts the one path; the counters agree with its report.
  const admin = { Authorization: `Bearer ${server.adminToken}`, 'Content-Type': 'application/json' };
  assert.equal((await fetch(`${server.url}/api/v1/caches/main`, { method: 'PATCH', headers: admin, body: JSON.stringify({ maxSize: 1 }) })).status, 200);
  const gc = await fetch(`${server.url}/api/v1/caches/main/gc`, { method: 'POST', headers: admin, body: '{}' });
  const report = (await gc.json()) as { deleted: { paths: number; bytes: number }; orphans: { narBytes: number } };
  assert.equal(gc.status, 200, JSON.stringify(report));
  assert.equal(report.deleted.paths, 1);
  const collected = await server.scrape();
  assert.equal(total(collected, 'larder_gc_runs_total', { cache: 'main' }), 1);
  assert.equal(total(collected, 'larder_gc_deleted_paths_total', { cache: 'main' }), 1);
  assert.equal(total(collected, 'larder_gc_freed_bytes_total', { cache: 'main' }), report.deleted.bytes + report.orphans.narBytes);
  assert.equal(report.deleted.bytes, small.file.length, 'the evicted path took its NAR with it');

  // The log: one JSON line per request, none carrying a token or an Authorization header.
  const log = server.logLines();
  const requestLines = log.filter((l) => typeof l.route === 'string');
  assert.equal(requestLines.length, log.length, 'nothing but request lines was logged');
  for (const line of requestLines) {
    for (const field of ['time', 'level', 'pid', 'method', 'url', 'route', 'bytesSent', 'bytesReceived', 'durationMs', 'msg']) {
      assert.ok(field in line, `${field} in ${JSON.stringify(line)}`);
    }
  }
  const uploads = requestLines.filter((l) => l.method === 'PUT');
  assert.equal(uploads.length, 3 + refusals.length);
  assert.ok(uploads.every((l) => l.token === 'ci-runner' && l.tokenId === tokenId && l.cache === 'main'));
  assert.ok(requestLines.filter((l) => l.route === 'api').every((l) => l.token === 'first-start admin'));
  assert.equal(requestLines.find((l) => String(l.url).startsWith('/no-such-cache/'))?.cache, undefined, 'no cache named for an unknown one');
  const afterBanner = server.stdout().slice(server.banner.length);
  for (const secret of [token, server.adminToken, server.writeToken, Buffer.from(`nix:${token}`).toString('base64')]) {
    assert.ok(!afterBanner.includes(secret) && !server.stderr().includes(secret), 'no token in the log');
  }
  assert.doesNotMatch(afterBanner, /authorization|bearer|basic /i);
});

test('metrics.access = "admin" asks for a server-admin token; log.format = "text" writes readable lines', async (t) => {
  const server = await startObservedLarder(t, { env: { LARDER_METRICS_ACCESS: 'admin', LARDER_LOG_FORMAT: 'text' } });
  const anonymous = await fetch(`${server.url}/metrics`);
  assert.equal(anonymous.status, 401);
  assert.match(await anonymous.text(), /server-admin token/);
  assert.equal(anonymous.headers.get('www-authenticate'), 'Basic realm="larder"');
  const writer = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.writeToken}` } });
  assert.equal(writer.status, 403);
  await writer.body?.cancel();
  const samples = await server.scrape(server.adminToken);
  assert.equal(requestsOf(samples, { route: 'metrics', status: '401' }), 1);
  assert.equal(requestsOf(samples, { route: 'metrics', status: '403' }), 1);
  const head = await fetch(`${server.url}/metrics`, { method: 'HEAD', headers: { Authorization: `Bearer ${server.adminToken}` } });
  assert.equal(head.status, 200);
  assert.match(head.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);

  await fetch(`${server.url}/healthz`).then((r) => r.text());
  const deadline = Date.now() + 10_000;
  while (!/ GET \/healthz 200 /.test(server.stdout()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const text = server.stdout().slice(server.banner.length);
  assert.match(text, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO GET \/healthz 200 method=GET url=\/healthz route=health status=200 bytesSent=\d+ bytesReceived=\d+ durationMs=[\d.]+ remote=127\.0\.0\.1$/m);
  assert.match(text, /^\S+ INFO GET \/metrics 403 .*token="first-start write" tokenId=\w+/m);
  assert.ok(!text.includes(server.writeToken) && !text.includes(server.adminToken));
});

test('metrics.access = "off": /metrics is a 404', async (t) => {
  const server = await startObservedLarder(t, { env: { LARDER_METRICS_ACCESS: 'off' } });
  const res = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } });
  assert.equal(res.status, 404);
  assert.match(await res.text(), /switched off/);
});
