import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { test, type TestContext } from 'node:test';
import { SharedDownload } from '../../src/services/mirror/shared-download.ts';

async function spool(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-spool-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Reads what a follower has received so far, without waiting for the end. */
async function received(stream: Readable, wait = 50): Promise<number> {
  let bytes = 0;
  stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
  await new Promise((resolve) => setTimeout(resolve, wait));
  return bytes;
}

test('followers get every byte, joining early or late; the spool file leaves no name behind', async (t) => {
  const dir = await spool(t);
  const download = await SharedDownload.create(dir, 6);
  assert.deepEqual(await readdir(dir), [], 'unlinked at once');
  const early = download.follow();
  await download.append(Buffer.from('abc'));
  const late = download.follow();
  await download.append(Buffer.from('def'));
  download.succeed();
  assert.equal((await buffer(early)).toString(), 'abcdef');
  assert.equal((await buffer(late)).toString(), 'abcdef');
  assert.equal(download.size, 6);
});

test('the last byte waits for the verdict: nobody holds a complete file that failed', async (t) => {
  const download = await SharedDownload.create(await spool(t), undefined);
  const follower = download.follow();
  await download.append(Buffer.from('0123456789'));
  assert.equal(await received(follower), 9, 'all but the last byte');
  const failed = new Error('FileHash mismatch');
  const ended = new Promise<unknown>((resolve) => follower.on('error', resolve));
  download.fail(failed);
  assert.equal(await ended, failed);
  assert.equal(download.failure, failed);
});

test('a follower that leaves early does not disturb the download or the others', async (t) => {
  const download = await SharedDownload.create(await spool(t), undefined);
  const leaving = download.follow();
  const staying = download.follow();
  await download.append(Buffer.alloc(300_000, 1));
  leaving.destroy();
  await download.append(Buffer.alloc(300_000, 2));
  download.succeed();
  const all = await buffer(staying);
  assert.equal(all.length, 600_000);
  assert.equal(all[599_999], 2);
});

test('started() resolves with the first byte, or with the end when none came', async (t) => {
  const dir = await spool(t);
  const empty = await SharedDownload.create(dir, undefined);
  const marker = Symbol('pending');
  assert.equal(await Promise.race([empty.started(), new Promise((r) => setTimeout(() => r(marker), 20))]), marker);
  empty.fail(new Error('refused'));
  await empty.started();
  assert.equal(empty.failure?.message, 'refused');

  const one = await SharedDownload.create(dir, undefined);
  await one.append(Buffer.from('x'));
  await one.started();
  one.succeed();
  assert.throws(() => one.follow(), /has ended/, 'after the end and with no follower, the stored copy is read instead');
});
