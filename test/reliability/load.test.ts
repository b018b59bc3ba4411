// A burst against a real server: 1,000 narinfo requests at once (hits and
// misses) while 50 NAR downloads run, each on its own connection. Zero errors:
// every hit is the signed narinfo, every miss a 404, every NAR byte for byte
// what was uploaded. (Timing is for bench/; here only correctness under load.)

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { startLarder } from '../helpers/larder-server.ts';
import { bearer, httpRequest, makePath, randomHashPart, uploadPath, type PathUpload } from './fixtures.ts';

const NARINFO_REQUESTS = 1000;
const NAR_DOWNLOADS = 50;

test(`a burst of ${NARINFO_REQUESTS} concurrent narinfo requests and ${NAR_DOWNLOADS} concurrent NAR downloads: 0 errors, every byte right`, async (t) => {
  const server = await startLarder(t, { env: { LARDER_GC_INTERVAL: 'off' } });
  const token = server.writeToken;
  // 50 paths of 512 KiB (random: zstd keeps them large), uploaded 10 at a time.
  const paths: PathUpload[] = [];
  for (let i = 0; i < NAR_DOWNLOADS; i += 10) {
    const batch = await Promise.all(Array.from({ length: 10 }, (_, k) => makePath(`load-${i + k}`, randomBytes(512 * 1024))));
    for (const r of await Promise.all(batch.map((up) => uploadPath(server.cacheUrl, token, up)))) assert.deepEqual(r, { nar: 201, narinfo: 201 });
    paths.push(...batch);
  }
  const narinfos = new Map<string, string>();
  for (const up of paths) narinfos.set(up.hashPart, (await httpRequest(server.url, `/main/${up.hashPart}.narinfo`, { headers: bearer(token) })).body.toString());

  // Every request on a connection of its own: 1,050 sockets at once.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  t.after(() => agent.destroy());
  const errors: string[] = [];
  const narinfoRequests = Array.from({ length: NARINFO_REQUESTS }, async (_, i) => {
    const hit = i % 3 !== 0; // two thirds hits, a third misses
    const hashPart = hit ? paths[i % paths.length]!.hashPart : randomHashPart();
    try {
      const answer = await httpRequest(server.url, `/main/${hashPart}.narinfo`, { headers: bearer(token), agent, timeoutMs: 60_000 });
      if (hit && (answer.status !== 200 || answer.body.toString() !== narinfos.get(hashPart))) errors.push(`narinfo ${hashPart}: ${answer.status}`);
      if (!hit && answer.status !== 404) errors.push(`miss ${hashPart}: ${answer.status}`);
      return hit;
    } catch (error) {
      errors.push(`narinfo ${hashPart}: ${(error as Error).message}`);
      return hit;
    }
  });
  const downloads = paths.map(async (up) => {
    try {
      const answer = await httpRequest(server.url, `/main/${up.url}`, { headers: bearer(token), agent, timeoutMs: 60_000 });
      if (answer.status !== 200 || !answer.body.equals(up.file)) errors.push(`NAR ${up.url}: ${answer.status}, ${answer.body.length} of ${up.file.length} bytes`);
      return answer.body.length;
    } catch (error) {
      errors.push(`NAR ${up.url}: ${(error as Error).message}`);
      return 0;
    }
  });
  const hits = (await Promise.all(narinfoRequests)).filter(Boolean).length;
  const bytes = (await Promise.all(downloads)).reduce((a, b) => a + b, 0);
  assert.deepEqual(errors, []);
  t.diagnostic(`${hits} hits, ${NARINFO_REQUESTS - hits} misses, ${NAR_DOWNLOADS} NARs (${(bytes / 2 ** 20).toFixed(1)} MiB) downloaded, 0 errors`);
  assert.equal(bytes, paths.reduce((n, p) => n + p.file.length, 0));
});
