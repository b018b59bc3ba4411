// Crash safety: 64 uploads (NAR + narinfo pairs) run at once against a real
// `larder serve`, which is killed with SIGKILL while they are in flight, then
// started again on the same state. `larder verify` then finds nothing wrong
// (what the crash left is either uploads in flight or, judged as old, only
// orphans: never a narinfo without its NAR or references); every upload whose
// NAR and narinfo both got a 2xx is intact, byte for byte; every other one is
// either absent or complete, never half there; and the client, retrying what
// failed, completes the closure. On SQLite + directory and on PostgreSQL + S3.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VerifyReport } from '../../src/services/verify.ts';
import { backends } from '../helpers/backends.ts';
import { larder } from '../helpers/larder-cli.ts';
import { startLarder } from '../helpers/larder-server.ts';
import { assertSubstitutable, bearer, httpRequest, makeClosure, makePath, uploadPath } from './fixtures.ts';

const CONCURRENT = 64;

/** `larder verify --json` on a data directory; the exit code and the report. */
async function verifyJson(dataDir: string, env: NodeJS.ProcessEnv): Promise<{ code: number; report: VerifyReport }> {
  try {
    const stdout = await larder(['verify', '--json', '--data', dataDir], { ...process.env, ...env });
    return { code: 0, report: JSON.parse(stdout) as VerifyReport };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    assert.equal(e.code, 1, `verify could not check: ${e.stderr}`);
    return { code: e.code, report: JSON.parse(e.stdout) as VerifyReport };
  }
}

for (const backend of backends) {
  test(`${backend.name}: kill -9 during ${CONCURRENT} concurrent uploads, restart, verify clean, acknowledged uploads intact`, async (t) => {
    const env = await backend.env(t);
    if (!env) return;
    const dataDir = await mkdtemp(join(tmpdir(), 'larder-crash-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const serverEnv = { ...env, LARDER_GC_INTERVAL: 'off' };
    const first = await startLarder(t, { dataDir, env: serverEnv });
    const token = first.writeToken;

    // A base committed before the crash, and the uploads in flight when it comes: each refers to a base path.
    const basePaths = await makeClosure('base', 3, { size: 4096 });
    for (const up of basePaths) assert.deepEqual(await uploadPath(first.cacheUrl, token, up), { nar: 201, narinfo: 201 });
    // Sizes from 32 KiB to 512 KiB of random bytes, so the kill finds bodies half sent.
    const uploads = await Promise.all(
      Array.from({ length: CONCURRENT }, (_, i) => makePath(`inflight-${i}`, randomBytes(32 * 1024 * (1 + (i % 16))), [basePaths[i % 3]!.base])),
    );

    let acknowledgedPairs = 0;
    let killed = false;
    const kill = () => {
      if (killed) return;
      killed = true;
      process.kill(first.pid, 'SIGKILL');
    };
    const outcomes = await Promise.all(
      uploads.map(async (up) => {
        const { origin, pathname } = new URL(first.cacheUrl);
        try {
          const nar = await httpRequest(origin, `${pathname}/${up.url}`, { method: 'PUT', body: up.file, headers: bearer(token) });
          if (nar.status >= 300) return { up, nar: nar.status, narinfo: 0 };
          const info = await httpRequest(origin, `${pathname}/${up.hashPart}.narinfo`, { method: 'PUT', body: up.narinfo(), headers: bearer(token) });
          // A quarter of the uploads done: the rest are at every stage, from NAR bytes to narinfo commit.
          if (info.status < 300 && ++acknowledgedPairs === CONCURRENT / 4) kill();
          return { up, nar: nar.status, narinfo: info.status };
        } catch {
          return { up, nar: -1, narinfo: -1 }; // the connection died with the server
        }
      }),
    );
    kill(); // in case every upload finished before the trigger (it should not)
    const child = await waitForExit(first.pid);
    assert.ok(child, 'the server process is gone');

    const acknowledged = outcomes.filter((o) => o.nar >= 200 && o.nar < 300 && o.narinfo >= 200 && o.narinfo < 300);
    const failed = outcomes.filter((o) => !acknowledged.includes(o));
    t.diagnostic(`${acknowledged.length} uploads acknowledged before the kill, ${failed.length} cut off`);
    assert.ok(failed.length > 0, 'the kill came while uploads were in flight');

    const second = await startLarder(t, { dataDir, env: serverEnv });
    const cacheUrl = second.cacheUrl;

    // verify, as an operator would run it after the crash: nothing wrong (the crash's leftovers are in flight).
    const after = await verifyJson(dataDir, env);
    assert.deepEqual(after.report.problems, [], 'verify finds nothing wrong after the crash');
    assert.equal(after.code, 0);
    const inFlight = after.report.caches[0]!.inFlight;
    t.diagnostic(`after restart: ${after.report.caches[0]!.paths} paths, in flight: ${inFlight.nars} NARs without narinfo, ${inFlight.files} files without record`);
    // Judged as if the grace period had passed, the leftovers are orphans for GC, never broken paths.
    const aged = await verifyJson(dataDir, { ...env, LARDER_GC_UPLOAD_GRACE: '1ms' });
    const integrity = aged.report.problems.filter((p) => !['orphan-nar', 'orphan-file', 'abandoned'].includes(p.kind));
    assert.deepEqual(integrity, [], 'no narinfo without its NAR or references, no bad hash or signature');

    await inBatches(acknowledged, 8, ({ up }) => assertSubstitutable(cacheUrl, token, up));
    await inBatches(failed, 8, async ({ up }) => {
      const { origin, pathname } = new URL(cacheUrl);
      const info = await httpRequest(origin, `${pathname}/${up.hashPart}.narinfo`, { headers: bearer(token) });
      if (info.status === 200) await assertSubstitutable(cacheUrl, token, up); // committed, the answer lost
      else assert.equal(info.status, 404, `${up.base}: absent or whole, got ${info.status}`);
    });
    const visible = after.report.caches[0]!.paths;
    assert.ok(visible >= basePaths.length + acknowledged.length && visible <= basePaths.length + CONCURRENT, `${visible} paths visible`);

    // The client retries what failed; then everything is there and verify is still clean.
    await inBatches(failed, 8, async ({ up }) => {
      const again = await uploadPath(cacheUrl, token, up);
      assert.ok(again.nar < 300 && again.narinfo < 300, `${up.base} retried: ${JSON.stringify(again)}`);
      await assertSubstitutable(cacheUrl, token, up);
    });
    const final = await verifyJson(dataDir, env);
    assert.deepEqual(final.report.problems, []);
    assert.equal(final.report.caches[0]!.paths, basePaths.length + CONCURRENT);
  });
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

/** Resolves true once no process has this pid (the test's child, reaped by node). */
async function waitForExit(pid: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}
