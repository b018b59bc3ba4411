// The blob store failing under a running server, for real: the filesystem
// store lives on a small tmpfs (bind-mounted where the server looks, so it can
// be made read-only, taken away and given back without losing its contents).
// Full, read-only and gone, uploads are refused with a 503 and Retry-After and
// leave nothing behind; reads that storage cannot answer are 503, never 404;
// and once the fault goes, the same server works again without a restart.
// Needs root (mount); skipped with the reason otherwise. The S3 side: the
// service stopped is test/server/scale-out.test.ts "with the S3 service down";
// here, in long mode, S3 going silent behind a TCP proxy (slow storage).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import type { VerifyReport } from '../../src/services/verify.ts';
import { TcpProxy } from '../index/tcp-proxy.ts';
import { scaleOut } from '../helpers/backends.ts';
import { larder } from '../helpers/larder-cli.ts';
import { startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { servicesRequired } from '../helpers/nix-env.ts';
import { assertSubstitutable, bearer, httpRequest, makePath, uploadPath, type Answer } from './fixtures.ts';

const run = promisify(execFile);
const LONG = process.env.LARDER_LONG === '1';

interface Mounts {
  /** Where the server keeps its blobs: a bind mount of `backing`. */
  readonly store: string;
  readonly backing: string;
  remount(options: string): Promise<void>;
  unbind(): Promise<void>;
  bind(): Promise<void>;
}

/** A 2 MiB tmpfs, bind-mounted at the store directory; undefined (test skipped) when mounting is not permitted. */
async function smallStore(t: TestContext, dir: string): Promise<Mounts | undefined> {
  const backing = join(dir, 'backing');
  const store = join(dir, 'store');
  await mkdir(backing);
  await mkdir(store);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'larder-test', backing]);
  } catch (error) {
    const reason = `cannot mount a tmpfs (needs root): ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`;
    if (servicesRequired) throw new Error(reason);
    t.skip(reason);
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  let bound = false;
  const mounts: Mounts = {
    store,
    backing,
    remount: async (options) => void (await run('mount', ['-o', `remount,bind,${options}`, store])),
    unbind: async () => {
      await run('umount', ['-l', store]);
      bound = false;
    },
    bind: async () => {
      await run('mount', ['--bind', backing, store]);
      bound = true;
    },
  };
  await mounts.bind();
  // One hook, in order: the mounts go before the directory that holds them.
  t.after(async () => {
    if (bound) await run('umount', ['-l', store]).catch(() => {});
    await run('umount', ['-l', backing]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  return mounts;
}

async function verifyReport(server: RunningLarder): Promise<VerifyReport> {
  const stdout = await larder(['verify', '--json', '--data', server.dataDir]).catch((e: { stdout: string }) => e.stdout);
  return JSON.parse(stdout) as VerifyReport;
}

/** Files under the store's temporary directory: a clean failure leaves none. */
async function tempFiles(mounts: Mounts): Promise<string[]> {
  return readdir(join(mounts.backing, '.tmp')).catch(() => []);
}

function assertUnavailable(answer: Answer, what: string): void {
  assert.equal(answer.status, 503, `${what}: ${answer.status} ${answer.body}`);
  assert.equal(answer.headers['retry-after'], '5', `${what}: Retry-After`);
  assert.match(answer.body.toString(), /^storage: cannot /, `${what}: says storage is the problem`);
}

test('filesystem store full, read-only, gone: 503s and clean failures, then recovery without a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'larder-faults-'));
  const mounts = await smallStore(t, dir);
  if (!mounts) return;
  const server = await startLarder(t, { dataDir: dir, env: { LARDER_GC_INTERVAL: 'off' } });
  const { origin, pathname } = new URL(server.cacheUrl);
  const token = server.writeToken;
  const get = (path: string) => httpRequest(origin, `${pathname}/${path}`, { headers: bearer(token) });
  const put = (path: string, body: Uint8Array | string) => httpRequest(origin, `${pathname}/${path}`, { method: 'PUT', body, headers: bearer(token) });

  const before = await makePath('before', 'stored before the faults');
  assert.deepEqual(await uploadPath(server.cacheUrl, token, before), { nar: 201, narinfo: 201 });
  // A NAR uploaded now whose narinfo will come while the disk is full.
  const pending = await makePath('pending', 'narinfo comes later');
  assert.equal((await put(pending.url, pending.file)).status, 201);

  await t.test('full: NAR and narinfo uploads are 503, nothing is kept; reads still work', async () => {
    const free = await statfs(mounts.backing);
    const filler = join(mounts.backing, 'filler');
    await writeFile(filler, Buffer.alloc(free.bavail * free.bsize)).catch(() => {});
    await writeFile(`${filler}-2`, Buffer.alloc(64 * 1024)).catch(() => {}); // whatever the first left
    const big = await makePath('big', randomBytes(256 * 1024));
    assertUnavailable(await put(big.url, big.file), 'NAR upload on a full disk');
    assertUnavailable(await put(`${pending.hashPart}.narinfo`, pending.narinfo()), 'narinfo upload on a full disk');
    assert.equal((await get(`${pending.hashPart}.narinfo`)).status, 404, 'the refused narinfo is not visible');
    await assert.rejects(stat(join(mounts.backing, 'main', `${pending.hashPart}.narinfo`)), { code: 'ENOENT' }, 'nor published short in the store');
    assert.equal((await get(big.url)).status, 404, 'the refused NAR is not there');
    assert.deepEqual(await tempFiles(mounts), [], 'no temporary file left behind');
    await assertSubstitutable(server.cacheUrl, token, before);

    await rm(filler, { force: true });
    await rm(`${filler}-2`, { force: true });
    assert.deepEqual(await uploadPath(server.cacheUrl, token, big), { nar: 201, narinfo: 201 }, 'space again: uploads work');
    assert.equal((await put(`${pending.hashPart}.narinfo`, pending.narinfo())).status, 201);
    await assertSubstitutable(server.cacheUrl, token, pending);
  });

  await t.test('read-only: uploads are 503, reads work, writable again without a restart', async () => {
    await mounts.remount('ro');
    const refused = await makePath('readonly', 'written while read-only');
    assertUnavailable(await put(refused.url, refused.file), 'NAR upload on a read-only store');
    assert.equal((await get(refused.url)).status, 404);
    await assertSubstitutable(server.cacheUrl, token, before);
    await mounts.remount('rw');
    assert.deepEqual(await uploadPath(server.cacheUrl, token, refused), { nar: 201, narinfo: 201 });
  });

  await t.test('gone (unmounted): reads answer 503, not 404; /readyz says so; back when it is mounted again', async () => {
    await mounts.unbind();
    assertUnavailable(await get(before.url), 'a NAR read with the store gone');
    const absent = `nar/${'0'.repeat(52)}.nar.zst`;
    assertUnavailable(await get(absent), 'a read of a NAR that was never there, with the store gone');
    const head = await httpRequest(origin, `${pathname}/${before.url}`, { method: 'HEAD', headers: bearer(token) });
    assert.equal(head.status, 503, 'HEAD too');
    const upload = await makePath('gone', 'uploaded while the store is gone');
    assertUnavailable(await put(upload.url, upload.file), 'NAR upload with the store gone');
    const ready = await httpRequest(server.url, '/readyz');
    assert.equal(ready.status, 503, `readyz: ${ready.body}`);
    assert.equal((await httpRequest(server.url, '/healthz')).status, 200, 'the process is alive');

    await mounts.bind();
    await assertSubstitutable(server.cacheUrl, token, before);
    assert.equal((await get(absent)).status, 404, 'absent is 404 again once storage can say so');
    assert.equal((await httpRequest(server.url, '/readyz')).status, 200);
    assert.deepEqual(await uploadPath(server.cacheUrl, token, upload), { nar: 201, narinfo: 201 });
  });

  await t.test('after all that, verify finds every path intact and nothing half-written', async () => {
    const report = await verifyReport(server);
    assert.deepEqual(report.problems, []);
    assert.equal(report.caches.find((c) => c.cache === 'main')!.paths, 5);
  });
});

test('S3 that stops answering (connections accepted, no bytes back): 503s after its timeouts, not a hang; then recovery', { skip: LONG ? false : 'long mode only (LARDER_LONG=1): each stalled S3 request waits out its timeouts and retries' }, async (t) => {
  const env = await scaleOut.env(t);
  if (!env) return;
  const proxy = await TcpProxy.start(Number(new URL(env.LARDER_STORAGE_ENDPOINT!).port));
  t.after(() => proxy.close());
  const server = await startLarder(t, { env: { ...env, LARDER_STORAGE_ENDPOINT: `http://127.0.0.1:${proxy.port}`, LARDER_GC_INTERVAL: 'off' } });
  const { origin, pathname } = new URL(server.cacheUrl);
  const token = server.writeToken;
  const before = await makePath('before-stall', 'stored before S3 went silent');
  assert.deepEqual(await uploadPath(server.cacheUrl, token, before), { nar: 201, narinfo: 201 });

  proxy.mode = 'stall';
  // Generous client timeouts: they catch a hang, they do not measure speed.
  const read = httpRequest(origin, `${pathname}/${before.url}`, { headers: bearer(token), timeoutMs: 180_000 });
  const during = await makePath('during-stall', 'uploaded while S3 is silent');
  const upload = httpRequest(origin, `${pathname}/${during.url}`, { method: 'PUT', body: during.file, headers: bearer(token), timeoutMs: 180_000 });
  // Meanwhile what the index answers alone is still served.
  const narinfo = await httpRequest(origin, `${pathname}/${before.hashPart}.narinfo`, { headers: bearer(token), timeoutMs: 30_000 });
  assert.equal(narinfo.status, 200);
  assertUnavailable(await read, 'a NAR read from a silent S3');
  const uploaded = await upload;
  assert.equal(uploaded.status, 503, `an upload to a silent S3: ${uploaded.status} ${uploaded.body}`);

  proxy.mode = 'forward';
  await assertSubstitutable(server.cacheUrl, token, before);
  assert.deepEqual(await uploadPath(server.cacheUrl, token, during), { nar: 201, narinfo: 201 });
  await assertSubstitutable(server.cacheUrl, token, during);
});
