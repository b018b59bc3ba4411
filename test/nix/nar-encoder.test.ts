// The encoder against `nix-store --dump`, byte for byte, on generated trees
// full of awkward names, modes and symlinks, and on a file too big to buffer.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeNar, NarChunkEncoder, narStream } from '../../src/nix/nar-encoder.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { nixEnv, skipWithoutNix } from '../helpers/nix-env.ts';
import { collect, generateTree, nixDump, nixDumpStream, tempDir, writeTree, type FsTree } from './nar-fixtures.ts';

const MiB = 1024 * 1024;

test('a file holding "Hello, world!\\n" has the 128-byte NAR and the NarHash Nix gives it', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'hello');
  await writeFile(file, 'Hello, world!\n');
  const nar = await collect(encodeNar(file));
  assert.equal(nar.length, 128);
  const digest = createHash('sha256').update(nar).digest();
  assert.equal(digest.toString('hex'), '5849379a8b8cbfc4131d0c0f89ad020ea270d85f161e257b7d52135b58337ece');
  assert.equal(encodeNix32(digest), '1kky6dc5n4sjgmxja7hnbzc718hf0anqj3qc3l9w9gwcifd3fjaq');

  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  assert.deepEqual(await nixDump(nix, file), nar);
  const { stdout } = await nix.run('nix-hash', ['--type', 'sha256', '--base32', file]);
  assert.equal(stdout.trim(), '1kky6dc5n4sjgmxja7hnbzc718hf0anqj3qc3l9w9gwcifd3fjaq');
});

test('matches nix-store --dump byte for byte on 60 generated trees', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const dir = await tempDir(t);
  const seen = new Set<string>();
  for (let seed = 1; seed <= 60; seed++) {
    const tree = generateTree(seed);
    for (const feature of features(tree)) seen.add(feature);
    const path = join(dir, `tree-${seed}`);
    await writeTree(Buffer.from(path), tree);
    const [ours, theirs] = await Promise.all([collect(encodeNar(path)), nixDump(nix, path)]);
    assert.ok(ours.equals(theirs), `seed ${seed}: ${ours.length}-byte NAR differs from nix-store --dump's ${theirs.length} bytes`);
  }
  // The corpus really exercised every awkward case.
  assert.deepEqual([...seen].sort(), [
    'big file', 'deep nesting', 'empty directory', 'empty file', 'executable', 'file root', 'group-executable only',
    'non-UTF-8 name', 'symlink', 'symlink root',
  ]);
});

test('streams a 96 MiB file with flat memory and the same bytes as nix-store --dump', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const path = join(await tempDir(t), 'big');
  // Sparse, with a few marks so the contents are not all zeros; an odd size so the NAR pads it.
  const file = await open(path, 'w');
  for (const at of [0, 50 * MiB + 3, 96 * MiB]) await file.write('larder', at);
  await file.close();

  // Dead 256 KiB chunks pile up until V8's external-memory trigger (~64 MiB)
  // fires; collecting before each sample measures what is really held.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = process.memoryUsage();
  let growth = 0;
  let chunks = 0;
  const ours = createHash('sha256');
  for await (const chunk of encodeNar(path)) {
    ours.update(chunk);
    if (++chunks % 16 === 0) {
      gc();
      const now = process.memoryUsage();
      growth = Math.max(growth, now.rss - before.rss, now.arrayBuffers + now.heapUsed - before.arrayBuffers - before.heapUsed);
    }
  }
  assert.ok(growth < 32 * MiB, `memory grew by ${(growth / MiB).toFixed(1)} MiB while encoding a 96 MiB file`);

  const theirs = createHash('sha256');
  for await (const chunk of nixDumpStream(nix, path)) theirs.update(chunk);
  assert.equal(ours.digest('hex'), theirs.digest('hex'));
});

test('gathers small tokens into large chunks', async (t) => {
  const dir = join(await tempDir(t), 'many');
  await mkdir(dir);
  for (let i = 0; i < 2000; i++) await writeFile(join(dir, `f${i}`), '');
  const chunks: Buffer[] = [];
  for await (const chunk of encodeNar(dir)) chunks.push(chunk);
  const size = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  assert.ok(chunks.length <= Math.ceil(size / (64 * 1024)), `${chunks.length} chunks for ${size} bytes`);
});

test('narStream gives the same bytes as encodeNar', async (t) => {
  const path = join(await tempDir(t), 'tree');
  await writeTree(Buffer.from(path), generateTree(4));
  assert.deepEqual(await collect(narStream(path)), await collect(encodeNar(path)));
});

test('refuses sockets and FIFOs, naming the path', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'socket');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => server.close());
  await assert.rejects(collect(encodeNar(dir)), { message: `cannot put ${socket} in a NAR: it is a socket` });

  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(collect(encodeNar(fifo)), { message: `cannot put ${fifo} in a NAR: it is a FIFO` });
});

/** The whole NAR from the synchronous encoder, asking for chunks of `chunkSize`. */
function encodeSync(path: string, chunkSize?: number): Buffer {
  const encoder = new NarChunkEncoder(path, chunkSize === undefined ? {} : { chunkSize });
  const chunks: Buffer[] = [];
  for (let chunk = encoder.next(); chunk !== undefined; chunk = encoder.next()) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

test('the synchronous encoder matches nix-store --dump and encodeNar on 60 generated trees, at any chunk size', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const dir = await tempDir(t);
  for (let seed = 1; seed <= 60; seed++) {
    const path = join(dir, `tree-${seed}`);
    await writeTree(Buffer.from(path), generateTree(seed));
    const theirs = await nixDump(nix, path);
    for (const chunkSize of [undefined, 8192, 100_003]) {
      const ours = encodeSync(path, chunkSize);
      assert.ok(ours.equals(theirs), `seed ${seed}, chunks of ${chunkSize ?? 'default'}: ${ours.length}-byte NAR differs from nix-store --dump's ${theirs.length} bytes`);
    }
    assert.ok((await collect(encodeNar(path))).equals(theirs), `seed ${seed}: encodeNar`);
  }
});

test('the synchronous encoder hands out chunks of the size asked for, and reuses recycled ones', async (t) => {
  const dir = join(await tempDir(t), 'many');
  await mkdir(dir);
  for (let i = 0; i < 300; i++) await writeFile(join(dir, `f${i}`), Buffer.alloc(i * 37, i));
  const encoder = new NarChunkEncoder(dir, { chunkSize: 64 * 1024 });
  const sizes: number[] = [];
  const buffers = new Set<ArrayBufferLike>();
  const all: Buffer[] = [];
  for (let chunk = encoder.next(); chunk !== undefined; chunk = encoder.next()) {
    sizes.push(chunk.length);
    buffers.add(chunk.buffer);
    all.push(Buffer.from(chunk));
    encoder.recycle(chunk);
  }
  assert.ok(sizes.length > 10);
  // Every chunk but the last is full (a token may run a little past the size).
  for (const size of sizes.slice(0, -1)) assert.ok(size >= 64 * 1024 && size < 64 * 1024 + 4096, `a chunk of ${size} bytes`);
  assert.ok(buffers.size <= 3, `${buffers.size} buffers for ${sizes.length} recycled chunks`);
  assert.ok(Buffer.concat(all).equals(await collect(encodeNar(dir))));
});

test('the synchronous encoder refuses sockets and missing paths, naming them, and closes what it opened', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a-file'), Buffer.alloc(3 * MiB));
  const socket = join(dir, 'socket');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => server.close());
  const encoder = new NarChunkEncoder(dir, { chunkSize: 1024 * 1024 });
  assert.throws(() => {
    while (encoder.next() !== undefined);
  }, { message: `cannot put ${socket} in a NAR: it is a socket` });
  assert.equal(encoder.next(), undefined);
  const missing = join(dir, 'missing');
  assert.throws(() => new NarChunkEncoder(missing).next(), (error: NodeJS.ErrnoException) => error.code === 'ENOENT' && error.message.includes(missing));

  // Stopped half-way through a big file: close() releases it.
  const big = new NarChunkEncoder(join(dir, 'a-file'), { chunkSize: 1024 * 1024 });
  big.next();
  big.close();
  assert.equal(big.next(), undefined);
});

/** Which of the cases the generated corpus must cover appear in `tree`. */
function features(tree: FsTree, depth = 0): string[] {
  const found: string[] = [];
  if (depth === 0 && tree.type === 'regular') found.push('file root');
  if (depth === 0 && tree.type === 'symlink') found.push('symlink root');
  if (depth >= 40) found.push('deep nesting');
  switch (tree.type) {
    case 'regular':
      if (tree.mode & 0o100) found.push('executable');
      else if (tree.mode & 0o011) found.push('group-executable only');
      if (tree.contents.length === 0) found.push('empty file');
      if (tree.contents.length > 256 * 1024) found.push('big file');
      break;
    case 'symlink':
      found.push('symlink');
      break;
    case 'directory':
      if (tree.entries.length === 0) found.push('empty directory');
      for (const [name, node] of tree.entries) {
        if (!Buffer.from(name.toString()).equals(name)) found.push('non-UTF-8 name');
        found.push(...features(node, depth + 1));
      }
  }
  return found;
}
