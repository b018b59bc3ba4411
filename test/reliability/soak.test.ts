// Long mode only (LARDER_LONG=1): ten minutes of steady mixed traffic against
// one real server (narinfo hits and misses, NAR downloads, re-uploads), with
// the server's resident memory sampled every few seconds from /proc. Memory
// must stay flat: the median of the last quarter of the samples may not be far
// above the median of the first quarter. No request may fail, and an upload
// whose client went silent is dropped after the server's idle timeout.
// LARDER_SOAK_MINUTES shortens or lengthens the run.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startLarder } from '../helpers/larder-server.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { bearer, httpRequest, makePath, randomHashPart, sha256, uploadPath, type PathUpload } from './fixtures.ts';

const LONG = process.env.LARDER_LONG === '1';
const MINUTES = Number(process.env.LARDER_SOAK_MINUTES ?? 10);
const CLIENTS = 32;
const SAMPLE_MS = 5000;

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]);
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

test(`soak: ${MINUTES} minutes of mixed traffic with flat memory and no errors`, { skip: LONG ? false : 'long mode only (LARDER_LONG=1)', timeout: (MINUTES + 5) * 60_000 }, async (t) => {
  const server = await startLarder(t, { env: { LARDER_GC_INTERVAL: 'off' } });
  const token = server.writeToken;
  const paths: PathUpload[] = [];
  for (let i = 0; i < 200; i++) paths.push(await makePath(`soak-${i}`, randomBytes(i % 10 === 0 ? 1024 * 1024 : 16 * 1024)));
  for (const up of paths) assert.deepEqual(await uploadPath(server.cacheUrl, token, up), { nar: 201, narinfo: 201 });

  // A client that stops sending its upload's body and never goes away: the server must drop it
  // once the connection has been silent for its idle timeout (5 minutes), and the upload's
  // temporary file with it.
  const stalledSince = Date.now();
  let stalledClosedAfter: number | undefined;
  const stalled = connect(Number(new URL(server.url).port), '127.0.0.1');
  stalled.on('error', () => {}).on('close', () => (stalledClosedAfter = Date.now() - stalledSince));
  stalled.write(`PUT /main/nar/${encodeNix32(sha256('stalled'))}.nar HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 4096\r\n\r\nnix-`);

  const deadline = Date.now() + MINUTES * 60_000;
  const errors: string[] = [];
  let requests = 0;
  const client = async (seed: number) => {
    for (let n = seed; Date.now() < deadline; n += CLIENTS) {
      const up = paths[n % paths.length]!;
      const kind = n % 10;
      try {
        if (kind < 6) {
          const answer = await httpRequest(server.url, `/main/${up.hashPart}.narinfo`, { headers: bearer(token), timeoutMs: 30_000 });
          if (answer.status !== 200) errors.push(`narinfo ${answer.status}`);
        } else if (kind < 8) {
          const answer = await httpRequest(server.url, `/main/${randomHashPart()}.narinfo`, { headers: bearer(token), timeoutMs: 30_000 });
          if (answer.status !== 404) errors.push(`miss ${answer.status}`);
        } else if (kind < 9) {
          const answer = await httpRequest(server.url, `/main/${up.url}`, { headers: bearer(token), timeoutMs: 30_000 });
          if (answer.status !== 200 || !answer.body.equals(up.file)) errors.push(`NAR ${answer.status}`);
        } else {
          const again = await uploadPath(server.cacheUrl, token, up);
          if (again.nar !== 200 || again.narinfo !== 200) errors.push(`re-upload ${JSON.stringify(again)}`);
        }
      } catch (error) {
        errors.push((error as Error).message);
      }
      requests++;
    }
  };
  const samples: number[] = [];
  const sampler = (async () => {
    while (Date.now() < deadline) {
      samples.push(await rssKiB(server.pid));
      await sleep(SAMPLE_MS);
    }
  })();
  await Promise.all([...Array.from({ length: CLIENTS }, (_, i) => client(i)), sampler]);

  const quarter = Math.max(1, Math.floor(samples.length / 4));
  const first = median(samples.slice(0, quarter));
  const last = median(samples.slice(-quarter));
  t.diagnostic(`${requests} requests in ${MINUTES} min, ${errors.length} errors; RSS median first quarter ${(first / 1024).toFixed(1)} MiB, last quarter ${(last / 1024).toFixed(1)} MiB, peak ${(Math.max(...samples) / 1024).toFixed(1)} MiB (${samples.length} samples)`);
  assert.deepEqual(errors.slice(0, 10), []);
  t.diagnostic(`the stalled upload was ${stalledClosedAfter === undefined ? 'still open' : `dropped after ${(stalledClosedAfter / 1000).toFixed(0)} s`}`);
  if (MINUTES >= 6) {
    assert.ok(stalledClosedAfter !== undefined, 'a connection silent for over 5 minutes is dropped by the server');
    assert.deepEqual(await readdir(join(server.dataDir, 'store', '.tmp')), [], 'and its temporary file is gone');
  }
  stalled.destroy();
  // Flat: within a fifth (and 8 MiB of allocator slack) of where it started.
  assert.ok(last <= first * 1.2 + 8 * 1024, `RSS grew from ${first} KiB to ${last} KiB`);
});
