// Several replicas over one PostgreSQL and one S3 bucket behave as one server;
// the bucket stays a valid binary cache on its own; storage outages are 503s.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { scaleOut } from '../helpers/backends.ts';
import { api, startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix, type NixEnv } from '../helpers/nix-env.ts';
import { postgresService } from '../helpers/postgres-service.ts';
import { privateSwift, s3Service } from '../helpers/s3-service.ts';

async function pushWithNix(nix: NixEnv, server: RunningLarder, paths: string[]): Promise<void> {
  const netrc = await nix.netrc(server.cacheUrl, server.writeToken);
  await nix.run('nix', ['copy', '--to', `${server.cacheUrl}?compression=zstd`, ...paths], { env: nix.withConfig([`netrc-file = ${netrc}`]) });
}

async function substitute(nix: NixEnv, substituter: string, token: string, key: string, paths: string[]): Promise<void> {
  const netrc = await nix.netrc('http://127.0.0.1', token);
  await nix.run('nix-store', ['--realise', ...paths], {
    env: nix.withConfig([`substituters = ${substituter}`, 'require-sigs = true', `trusted-public-keys = ${key}`, `netrc-file = ${netrc}`]),
  });
}

/** A NAR of one file, uncompressed, with what a narinfo needs. */
async function smallUpload(name: string) {
  const dir = await mkdtemp(join(tmpdir(), 'larder-replica-'));
  await writeFile(join(dir, 'f'), `${name} ${Math.random()}`);
  const chunks: Buffer[] = [];
  for await (const chunk of encodeNar(join(dir, 'f'))) chunks.push(chunk);
  await rm(dir, { recursive: true });
  const nar = Buffer.concat(chunks);
  const hash = encodeNix32(createHash('sha256').update(nar).digest());
  const hashPart = encodeNix32(createHash('sha256').update(name).digest()).slice(0, 32);
  const narinfo = [
    `StorePath: /nix/store/${hashPart}-${name}`,
    `URL: nar/${hash}.nar`,
    'Compression: none',
    `NarHash: sha256:${hash}`,
    `NarSize: ${nar.length}`,
    'References: ',
    '',
  ].join('\n');
  return { nar, url: `nar/${hash}.nar`, hashPart, narinfo };
}

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

test('two replicas over one PostgreSQL and one bucket behave as one server', async (t) => {
  if (skipWithoutNix(t)) return;
  const env = await scaleOut.env(t);
  if (!env) return;
  const a = await startLarder(t, { env });
  const b = await startLarder(t, { env, dataDir: a.dataDir });
  assert.notEqual(a.url, b.url);
  assert.equal(b.publicKey, a.publicKey, 'one cache, one key, whichever replica answers');

  await t.test('push through A, substitute through B with signatures required', async (t) => {
    const nix = await nixEnv(t);
    const built = await nix.buildClosure(nix.chain(3, 20_000));
    const top = built.at(-1)!.out;
    await pushWithNix(nix, a, [top]);
    await nix.deleteLocally([top]);
    await substitute(nix, b.cacheUrl, a.writeToken, a.publicKey, [top]);
    for (const { out } of built) assert.ok(await nix.isValid(out), out);
  });

  await t.test('a NAR uploaded to A and its narinfo to B', async () => {
    const up = await smallUpload('split-upload');
    assert.equal((await fetch(`${a.cacheUrl}/${up.url}`, { method: 'PUT', body: up.nar, headers: auth(a.writeToken) })).status, 201);
    const res = await fetch(`${b.cacheUrl}/${up.hashPart}.narinfo`, { method: 'PUT', body: up.narinfo, headers: auth(a.writeToken) });
    assert.equal(res.status, 201, await res.text());
    const fromA = await fetch(`${a.cacheUrl}/${up.hashPart}.narinfo`, { headers: auth(a.writeToken) });
    assert.match(await fromA.text(), /^Sig: /m);
  });

  await t.test('a token revoked through A is refused by B within a second', async () => {
    const created = await api(a, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ cache: 'main', permission: 'read' }) });
    const { token, id } = (await created.json()) as { token: string; id: string };
    assert.equal((await fetch(`${b.cacheUrl}/nix-cache-info`, { headers: auth(token) })).status, 200);
    assert.equal((await api(a, `/api/v1/tokens/${id}`, { method: 'DELETE' })).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await fetch(`${b.cacheUrl}/nix-cache-info`, { headers: auth(token) })).status, 401);
  });
});

test('the bucket is a binary cache on its own: copied to a directory, Nix substitutes from it', async (t) => {
  if (skipWithoutNix(t)) return;
  const bucket = await s3Service(t);
  const database = bucket && (await postgresService(t));
  if (!bucket || !database) return;
  const env = await scaleOutEnv(bucket, database);
  const server = await startLarder(t, { env });
  const nix = await nixEnv(t);
  const built = await nix.buildClosure(nix.chain(3, 5000));
  const top = built.at(-1)!.out;
  await pushWithNix(nix, server, [top]);

  const dir = join(nix.dir, 'from-bucket');
  let token: string | undefined;
  do {
    const page = await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.bucket, Prefix: 'larder/main/', ContinuationToken: token }));
    for (const { Key } of page.Contents ?? []) {
      const target = join(dir, Key!.slice('larder/main/'.length));
      await mkdir(dirname(target), { recursive: true });
      const object = await bucket.client.send(new GetObjectCommand({ Bucket: bucket.bucket, Key }));
      await pipeline(object.Body as Readable, (await import('node:fs')).createWriteStream(target));
    }
    token = page.NextContinuationToken;
  } while (token);
  assert.match(await readFile(join(dir, 'nix-cache-info'), 'utf8'), /^StoreDir: \/nix\/store$/m);

  await nix.deleteLocally([top]);
  await nix.run('nix-store', ['--realise', top], {
    env: nix.withConfig([`substituters = file://${dir}`, 'require-sigs = true', `trusted-public-keys = ${server.publicKey}`]),
  });
  for (const { out } of built) assert.ok(await nix.isValid(out), out);
});

test('with the S3 service down, reads answer 503 and uploads fail cleanly; afterwards all works, nothing lost', async (t) => {
  if (skipWithoutNix(t)) return;
  const swift = await privateSwift(t);
  const database = swift && (await postgresService(t));
  if (!swift || !database) return;
  const { CreateBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: swift.connection.endpoint,
    region: swift.connection.region,
    forcePathStyle: true,
    credentials: { accessKeyId: swift.connection.accessKeyId, secretAccessKey: swift.connection.secretAccessKey },
  });
  await client.send(new CreateBucketCommand({ Bucket: 'outage' }));
  client.destroy();
  const env = await scaleOutEnv({ ...swift.connection, bucket: 'outage' }, database);
  const server = await startLarder(t, { env });
  const before = await smallUpload('before-outage');
  assert.equal((await fetch(`${server.cacheUrl}/${before.url}`, { method: 'PUT', body: before.nar, headers: auth(server.writeToken) })).status, 201);
  assert.equal((await fetch(`${server.cacheUrl}/${before.hashPart}.narinfo`, { method: 'PUT', body: before.narinfo, headers: auth(server.writeToken) })).status, 201);

  await swift.stop();
  const read = await fetch(`${server.cacheUrl}/${before.url}`, { headers: auth(server.writeToken) });
  assert.equal(read.status, 503, await read.clone().text());
  assert.ok(read.headers.get('retry-after'));
  await read.arrayBuffer();
  const during = await smallUpload('during-outage');
  const upload = await fetch(`${server.cacheUrl}/${during.url}`, { method: 'PUT', body: during.nar, headers: auth(server.writeToken) });
  assert.equal(upload.status, 503, await upload.clone().text());
  await upload.arrayBuffer();

  await swift.start();
  const again = await fetch(`${server.cacheUrl}/${before.url}`, { headers: auth(server.writeToken) });
  assert.equal(again.status, 200);
  assert.deepEqual(Buffer.from(await again.arrayBuffer()), before.nar, 'what was there before the outage is intact');
  assert.equal((await fetch(`${server.cacheUrl}/${during.url}`, { method: 'PUT', body: during.nar, headers: auth(server.writeToken) })).status, 201);
  assert.equal((await fetch(`${server.cacheUrl}/${during.hashPart}.narinfo`, { method: 'PUT', body: during.narinfo, headers: auth(server.writeToken) })).status, 201);
});

test('a 1 GiB NAR uploads through the S3 backend with the server under 200 MiB of memory', async (t) => {
  const env = await scaleOut.env(t);
  if (!env) return;
  const server = await startLarder(t, { env });
  const dir = await mkdtemp(join(tmpdir(), 'larder-big-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'big');
  await writeFile(file, '');
  await truncate(file, 1024 ** 3); // sparse: a GiB of zeros costs no disk
  const hasher = createHash('sha256');
  let size = 0;
  for await (const chunk of encodeNar(file)) {
    hasher.update(chunk);
    size += chunk.length;
  }
  const hash = encodeNix32(hasher.digest());
  const res = await fetch(`${server.cacheUrl}/nar/${hash}.nar`, {
    method: 'PUT',
    body: Readable.toWeb(Readable.from(encodeNar(file))) as ReadableStream,
    headers: { ...auth(server.writeToken), 'Content-Length': String(size) },
    duplex: 'half',
  } as RequestInit);
  assert.equal(res.status, 201, await res.text());
  const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
  const peakKiB = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]);
  t.diagnostic(`server peak RSS ${(peakKiB / 1024).toFixed(0)} MiB for a ${(size / 2 ** 20).toFixed(0)} MiB NAR`);
  assert.ok(peakKiB < 200 * 1024, `server peak RSS ${peakKiB} KiB`);
});

async function scaleOutEnv(
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; bucket: string },
  database: string,
): Promise<NodeJS.ProcessEnv> {
  return {
    LARDER_STORAGE_TYPE: 's3',
    LARDER_STORAGE_ENDPOINT: s3.endpoint,
    LARDER_STORAGE_REGION: s3.region,
    LARDER_STORAGE_BUCKET: s3.bucket,
    LARDER_STORAGE_PREFIX: 'larder',
    LARDER_STORAGE_PATH_STYLE: 'true',
    LARDER_STORAGE_ACCESS_KEY_ID: s3.accessKeyId,
    LARDER_STORAGE_SECRET_ACCESS_KEY: s3.secretAccessKey,
    LARDER_INDEX_TYPE: 'postgres',
    LARDER_INDEX_URL: database,
  };
}
