import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { text } from 'node:stream/consumers';
import { test, type TestContext } from 'node:test';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { StorageUnavailableError, type BlobWriter } from '../../src/storage/blob-store.ts';
import { S3Store, type S3StoreOptions } from '../../src/storage/s3-store.ts';
import { privateSwift, s3Service, storeOptions } from '../helpers/s3-service.ts';

const MiB = 1024 * 1024;

async function openStore(t: TestContext, options: S3StoreOptions): Promise<S3Store> {
  const store = await S3Store.open(options);
  t.after(() => store.close());
  return store;
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const keys = [];
  for await (const key of iterable) keys.push(key);
  return keys.sort();
}

async function rawKeys(client: S3Client, bucket: string): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (page.Contents ?? []).map((object) => object.Key!).sort();
}

async function strayUploads(client: S3Client, bucket: string): Promise<string[]> {
  const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (page.Uploads ?? []).map((upload) => upload.Key!);
}

/** Writes as the upload code does: never ends the stream, waits for 'drain'. */
async function write(writer: BlobWriter, chunks: Iterable<Buffer | string>): Promise<void> {
  for (const chunk of chunks) {
    if (!writer.stream.write(chunk)) await once(writer.stream, 'drain');
  }
}

/** `count` chunks of 1 MiB, each different (numbered), from one random block. */
function* numberedChunks(count: number, hash?: ReturnType<typeof createHash>): Generator<Buffer> {
  const block = randomBytes(MiB);
  for (let i = 0; i < count; i++) {
    const chunk = Buffer.from(block);
    chunk.writeUInt32BE(i, 0);
    hash?.update(chunk);
    yield chunk;
  }
}

async function sha256Of(stream: NodeJS.ReadableStream): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: hash.digest('hex'), size };
}

function assertUnavailable(error: unknown, operation: RegExp, key: string): true {
  assert.ok(error instanceof StorageUnavailableError, `expected StorageUnavailableError, got ${String(error)}`);
  assert.match(error.message, operation);
  assert.ok(error.message.includes(key), `message names the key: ${error.message}`);
  assert.ok(!error.message.includes('\n'), `one line: ${error.message}`);
  return true;
}

test('put, stat, open (whole and ranged), list, delete', async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const store = await openStore(t, s3.options());
  await store.put('main/nar/abc.nar.zst', 'hello, world');
  await store.put('main/x.narinfo', 'info');
  await store.put('mainly/other', new Uint8Array([1, 2, 3]));
  await store.put('main/empty', '');
  assert.equal(await store.stat('main/nar/abc.nar.zst'), 12);
  assert.equal(await store.stat('main/empty'), 0);
  assert.equal(await store.stat('main/missing'), undefined);
  assert.equal(await store.open('main/missing'), undefined);
  assert.equal(await store.open('main/missing', { start: 0, end: 3 }), undefined);
  const whole = await store.open('main/nar/abc.nar.zst');
  assert.equal(whole?.size, 12);
  assert.equal(await text(whole!.stream), 'hello, world');
  const part = await store.open('main/nar/abc.nar.zst', { start: 7, end: 11 });
  assert.equal(part?.size, 12);
  assert.equal(await text(part!.stream), 'world');
  const first = await store.open('main/nar/abc.nar.zst', { start: 0, end: 0 });
  assert.equal(first?.size, 12);
  assert.equal(await text(first!.stream), 'h');
  assert.equal(await text((await store.open('main/empty'))!.stream), '');
  // Past the end (the blob changed since the caller's stat): nothing, as from a file.
  const past = await store.open('main/nar/abc.nar.zst', { start: 20, end: 30 });
  assert.equal(past?.size, 12);
  assert.equal(await text(past!.stream), '');
  assert.deepEqual(await collect(store.list('main')), ['main/empty', 'main/nar/abc.nar.zst', 'main/x.narinfo']);
  assert.deepEqual(await collect(store.list('main/')), ['main/empty', 'main/nar/abc.nar.zst', 'main/x.narinfo']);
  assert.deepEqual(await collect(store.list('main/nar')), ['main/nar/abc.nar.zst']);
  assert.deepEqual(await collect(store.list('nothing')), []);
  await store.delete('main/x.narinfo');
  await store.delete('main/x.narinfo');
  assert.equal(await store.stat('main/x.narinfo'), undefined);
  const narinfo = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'main/nar/abc.nar.zst' }));
  assert.equal(narinfo.ContentType, 'application/x-nix-nar');
  await narinfo.Body?.transformToString();
});

test('keys live under the prefix and are listed relative to it, page after page', async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const store = await openStore(t, s3.options('tenant/larder/', { listPageSize: 10 }));
  const keys = Array.from({ length: 45 }, (_, i) => `c/k${String(i).padStart(4, '0')}`);
  await Promise.all(keys.map((key) => store.put(key, key)));
  await store.put('d/elsewhere', 'x');
  assert.deepEqual(await collect(store.list('c')), keys);
  assert.deepEqual((await rawKeys(s3.client, s3.bucket)).slice(0, 2), ['tenant/larder/c/k0000', 'tenant/larder/c/k0001']);
  assert.equal(await text((await store.open('c/k0042'))!.stream), 'c/k0042');
  // The same bucket without the prefix sees the prefixed keys, not the other way round.
  const bare = await openStore(t, s3.options(''));
  assert.equal(await bare.stat('c/k0042'), undefined);
  assert.equal(await bare.stat('tenant/larder/c/k0042'), 7);
  await store.deleteMany(keys);
  await store.deleteMany(['c/never-there']);
  assert.deepEqual(await collect(store.list('c')), []);
  assert.deepEqual(await collect(store.list('')), ['d/elsewhere']);
});

test('a streamed write is invisible until commit, and abort leaves nothing', async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const store = await openStore(t, s3.options('p'));
  const writer = await store.createWriter('c/nar/big.nar');
  await write(writer, ['part one, ']);
  assert.equal(await store.stat('c/nar/big.nar'), undefined);
  await write(writer, ['part two']);
  assert.equal(await store.stat('c/nar/big.nar'), undefined);
  await writer.commit();
  await writer.commit();
  await writer.abort(); // after a commit: does not undo it
  assert.equal(await text((await store.open('c/nar/big.nar'))!.stream), 'part one, part two');

  const aborted = await store.createWriter('c/nar/other.nar');
  await write(aborted, ['junk']);
  await aborted.abort();
  await aborted.abort();
  assert.equal(await store.stat('c/nar/other.nar'), undefined);
  await assert.rejects(aborted.commit(), /aborted/);
  assert.deepEqual(await strayUploads(s3.client, s3.bucket), []);
  assert.deepEqual(await rawKeys(s3.client, s3.bucket), ['p/c/nar/big.nar']);
});

test('a multipart write (several parts) is invisible until commit; aborting one mid-way leaves no upload and no object', async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const store = await openStore(t, s3.options('', { partSize: 5 * MiB, queueSize: 2 }));
  const hash = createHash('sha256');
  const writer = await store.createWriter('c/nar/multi.nar');
  await write(writer, numberedChunks(23, hash));
  // Parts are stored by now, but only as an unfinished upload.
  assert.equal(await store.stat('c/nar/multi.nar'), undefined);
  assert.deepEqual(await strayUploads(s3.client, s3.bucket), ['c/nar/multi.nar']);
  await writer.commit();
  const read = await sha256Of((await store.open('c/nar/multi.nar'))!.stream);
  assert.deepEqual(read, { digest: hash.digest('hex'), size: 23 * MiB });
  const across = await store.open('c/nar/multi.nar', { start: 5 * MiB - 2, end: 5 * MiB + 1 });
  assert.equal(across?.size, 23 * MiB);
  assert.equal((await text(across!.stream)).length > 0, true);
  assert.deepEqual(await strayUploads(s3.client, s3.bucket), []);

  const aborted = await store.createWriter('c/nar/dropped.nar');
  await write(aborted, numberedChunks(17));
  assert.deepEqual(await strayUploads(s3.client, s3.bucket), ['c/nar/dropped.nar']);
  await aborted.abort();
  await aborted.abort();
  assert.equal(await store.stat('c/nar/dropped.nar'), undefined);
  assert.deepEqual(await strayUploads(s3.client, s3.bucket), []);
  assert.deepEqual(await rawKeys(s3.client, s3.bucket), ['c/nar/multi.nar']);
});

test('sweepIncompleteUploads aborts old multipart uploads under the prefix only', async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const store = await openStore(t, s3.options('mine', { listPageSize: 2 }));
  for (const name of ['a', 'b', 'c', 'd', 'e']) {
    await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: `mine/c/nar/${name}.nar` }));
  }
  await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: 'mine/c/nar/a.nar' }));
  await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: 'theirs/c/nar/other.nar' }));
  assert.equal(await store.sweepIncompleteUploads(60 * 60_000), 0);
  // Swift rounds the time an upload was initiated up to the next second.
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  assert.equal(await store.sweepIncompleteUploads(0), 6);
  assert.deepEqual(await strayUploads(s3.client, s3.bucket), ['theirs/c/nar/other.nar']);
});

test('refuses keys that would leave the prefix', async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const store = await openStore(t, s3.options('p'));
  for (const key of ['../etc/passwd', 'a/../../b', '/abs', 'a//b', 'a/./b', 'a\0b', '']) {
    await assert.rejects(store.put(key, 'x'), /invalid blob key/, key);
    await assert.rejects(store.stat(key), /invalid blob key/, key);
    await assert.rejects(store.createWriter(key), /invalid blob key/, key);
  }
  await assert.rejects(collect(store.list('../x')), /invalid blob key/);
  assert.deepEqual(await rawKeys(s3.client, s3.bucket), []);
});

test('a 512 MiB streamed write keeps memory flat', { timeout: 300_000 }, async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const store = await openStore(t, s3.options());
  const size = 512 * MiB;
  globalThis.gc?.();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  let peakExternal = before.arrayBuffers;
  const sampler = setInterval(() => {
    const now = process.memoryUsage();
    peakRss = Math.max(peakRss, now.rss);
    peakExternal = Math.max(peakExternal, now.arrayBuffers);
  }, 5);
  const hash = createHash('sha256');
  const started = Date.now();
  try {
    const writer = await store.createWriter('c/nar/huge.nar');
    await write(writer, numberedChunks(size / MiB, hash));
    await writer.commit();
  } finally {
    clearInterval(sampler);
  }
  const rssGrowth = peakRss - before.rss;
  const bufferGrowth = peakExternal - before.arrayBuffers;
  t.diagnostic(
    `wrote ${size / MiB} MiB in ${Date.now() - started} ms; peak growth: rss ${(rssGrowth / MiB).toFixed(0)} MiB, buffers ${(bufferGrowth / MiB).toFixed(0)} MiB`,
  );
  // 4 parts of 8 MiB in flight plus the one being filled (about 45 MiB live), and
  // garbage not yet collected: about 130 MiB measured whatever the size (64 MiB
  // to 512 MiB); anything that buffered the body would exceed it.
  assert.ok(bufferGrowth < size / 3, `buffers grew by ${bufferGrowth} bytes`);
  assert.ok(rssGrowth < size / 2, `rss grew by ${rssGrowth} bytes`);
  assert.equal(await store.stat('c/nar/huge.nar'), size);
  const read = await sha256Of((await store.open('c/nar/huge.nar'))!.stream);
  assert.deepEqual(read, { digest: hash.digest('hex'), size });
});

/** A TCP port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A server that accepts connections and never answers. */
async function silentServer(t: TestContext): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

const fakeConnection = (endpoint: string) => ({ endpoint, region: 'us-east-1', accessKeyId: 'test:tester', secretAccessKey: 'testing' });

async function assertAllUnavailable(store: S3Store): Promise<void> {
  await assert.rejects(store.stat('main/x.narinfo'), (e) => assertUnavailable(e, /cannot stat/, 'main/x.narinfo'));
  await assert.rejects(store.open('main/nar/a.nar'), (e) => assertUnavailable(e, /cannot open/, 'main/nar/a.nar'));
  await assert.rejects(store.open('main/nar/a.nar', { start: 1, end: 2 }), (e) => assertUnavailable(e, /cannot open/, 'main/nar/a.nar'));
  await assert.rejects(store.put('main/x.narinfo', 'x'), (e) => assertUnavailable(e, /cannot write/, 'main/x.narinfo'));
  await assert.rejects(store.delete('main/x.narinfo'), (e) => assertUnavailable(e, /cannot delete/, 'main/x.narinfo'));
  await assert.rejects(collect(store.list('main')), (e) => assertUnavailable(e, /cannot list/, 'main'));
  const writer = await store.createWriter('main/nar/b.nar');
  await write(writer, ['small']);
  await assert.rejects(writer.commit(), (e) => assertUnavailable(e, /cannot (publish|write)/, 'main/nar/b.nar'));
  await writer.abort();
  await writer.abort();
}

test('storage down: a closed port is "unavailable", never "missing", and never hangs', { timeout: 120_000 }, async (t) => {
  const store = await openStore(t, storeOptions(fakeConnection(`http://127.0.0.1:${await closedPort()}`), 'bucket'));
  await assertAllUnavailable(store);
  await assert.rejects(store.check(), StorageUnavailableError);
  await assert.rejects(store.sweepIncompleteUploads(0), StorageUnavailableError);

  // A multipart write whose parts cannot be stored: the writer must neither hang nor crash.
  const writer = await store.createWriter('main/nar/c.nar');
  const failed = await write(writer, numberedChunks(40)).then(
    () => undefined,
    (error: unknown) => error,
  );
  if (failed !== undefined) assertUnavailable(failed, /cannot write/, 'main/nar/c.nar');
  await assert.rejects(writer.commit(), StorageUnavailableError);
  await writer.abort();
});

test('storage down: a server that never answers times out as "unavailable"', { timeout: 120_000 }, async (t) => {
  const port = await silentServer(t);
  const store = await openStore(
    t,
    storeOptions(fakeConnection(`http://127.0.0.1:${port}`), 'bucket', '', { requestTimeoutMs: 500, idleTimeoutMs: 500, maxAttempts: 2 }),
  );
  await assertAllUnavailable(store);
});

test('wrong credentials and a missing bucket are "unavailable", not "missing"', async (t) => {
  const s3 = await s3Service(t);
  if (!s3) return;
  const wrong = await openStore(t, storeOptions({ ...s3, secretAccessKey: 'wrong' }, s3.bucket));
  await assert.rejects(wrong.stat('main/x'), (e) => assertUnavailable(e, /cannot stat .*HTTP 403/, 'main/x'));
  await assert.rejects(wrong.open('main/x'), (e) => assertUnavailable(e, /cannot open .*HTTP 403/, 'main/x'));
  const nobucket = await openStore(t, storeOptions(s3, `${s3.bucket}-absent`));
  await assert.rejects(nobucket.stat('main/x'), (e) => assertUnavailable(e, /cannot stat main\/x: bucket .* does not exist/, 'main/x'));
  await assert.rejects(nobucket.open('main/x'), (e) => assertUnavailable(e, /cannot open .*NoSuchBucket/, 'main/x'));
  await assert.rejects(nobucket.put('main/x', 'x'), (e) => assertUnavailable(e, /cannot write .*NoSuchBucket/, 'main/x'));
  await assert.rejects(nobucket.check(), /bucket .* does not exist/);
  await (await openStore(t, s3.options())).check();
});

test('storage down: the real service stopped, then started again, with the same store', { timeout: 300_000 }, async (t) => {
  const swift = await privateSwift(t);
  if (!swift) return;
  const store = await openStore(t, storeOptions(swift.connection, 'larder', '', { connectTimeoutMs: 1_000 }));
  await store.client.send(new CreateBucketCommand({ Bucket: 'larder' }));
  await store.put('main/x.narinfo', 'before');
  await swift.stop();
  await assertAllUnavailable(store);
  await swift.start();
  assert.equal(await text((await store.open('main/x.narinfo'))!.stream), 'before');
  await store.put('main/y.narinfo', 'after');
  assert.equal(await store.stat('main/y.narinfo'), 5);
  assert.deepEqual(await collect(store.list('main')), ['main/x.narinfo', 'main/y.narinfo']);
});
