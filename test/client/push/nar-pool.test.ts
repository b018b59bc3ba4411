// The NAR worker pool behind `spoolNar`: the bytes it prepares in worker
// threads against the async encoder, its errors, its temporary files, and a
// process that uses it exiting on its own.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { NarPool } from '../../../src/client/push/nar-pool.ts';
import { spoolNar, type SpooledNar } from '../../../src/client/push/nar-spool.ts';
import { createDecompressor } from '../../../src/compression/decompress.ts';
import { ZstdFrameSplitter } from '../../../src/compression/zstd-frames.ts';
import { encodeNar } from '../../../src/nix/nar-encoder.ts';
import { encodeNix32 } from '../../../src/nix/nix32.ts';
import { collect, generateTree, tempDir, writeTree } from '../../nix/nar-fixtures.ts';

const MiB = 1024 * 1024;

function pool(t: { after(fn: () => Promise<void>): void }, size: number): NarPool {
  const made = new NarPool({ size });
  t.after(() => made.close());
  return made;
}

/** Random bytes, deterministic and incompressible. */
function noise(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let block = Buffer.from(String(seed));
  for (let at = 0; at < size; at += 32) {
    block = createHash('sha256').update(block).digest();
    block.copy(out, at);
  }
  return out;
}

test('paths prepared in parallel give the bytes of the async encoder, round-tripped through zstd', async (t) => {
  const dir = await tempDir(t);
  const spool = join(dir, 'spool');
  await mkdir(spool);
  const paths: string[] = [];
  for (let seed = 2; seed <= 9; seed++) {
    const path = join(dir, `tree-${seed}`);
    await writeTree(Buffer.from(path), generateTree(seed));
    paths.push(path);
  }
  // Bigger than the memory limit once compressed (random), so spooled to a file; and a compressible one.
  const big = join(dir, 'big');
  await mkdir(big);
  await writeFile(join(big, 'random'), noise(3 * MiB + 5, 1));
  await writeFile(join(big, 'text'), Buffer.from('larder '.repeat(900_000)));
  paths.push(big);

  const workers = pool(t, 3);
  const options = { tempDir: spool, compressionLevel: 3, memoryLimit: 2 * MiB };
  const spooled = await Promise.all(paths.map((path) => spoolNar(path, options, workers)));
  assert.ok(workers.threads <= 3, `${workers.threads} worker threads`);
  assert.equal((await readdir(spool)).length, 1, 'only the big NAR went to a temporary file');

  for (const [index, path] of paths.entries()) {
    const nar = await collect(encodeNar(path));
    const prepared = spooled[index]!;
    const compressed = await collect(prepared.body());
    assert.equal(prepared.narSize, nar.length, path);
    assert.ok(prepared.narHash.equals(createHash('sha256').update(nar).digest()), `${path}: NarHash`);
    assert.equal(prepared.fileSize, compressed.length, `${path}: FileSize`);
    assert.equal(prepared.fileHash, encodeNix32(createHash('sha256').update(compressed).digest()), `${path}: FileHash`);
    assert.ok((await buffer(Readable.from([compressed]).pipe(createDecompressor('zstd')))).equals(nar), `${path}: decompresses to its NAR`);
    // A retry gets the same bytes again.
    assert.ok((await collect(prepared.body())).equals(compressed), `${path}: second body()`);
  }
  const bigOne = spooled.at(-1)!;
  assert.ok(bigOne.fileSize > 3 * MiB && bigOne.fileSize < 3.2 * MiB, `random data stays its size, text shrinks: ${bigOne.fileSize}`);
  await Promise.all(spooled.map((s: SpooledNar) => s.dispose()));
  assert.deepEqual(await readdir(spool), [], 'dispose() removed the temporary file');
});

test('the compressed bytes decode with the zstd program too: one frame per 4 MiB of NAR', async (t) => {
  const dir = await tempDir(t);
  const workers = pool(t, 1);
  // Under 4 MiB of NAR (one frame) and about 14 MiB (a frame per 4 MiB, compressed several at once).
  for (const [name, lines, random] of [['whole', 30_000, 256 * 1024], ['framed', 800_000, 2 * MiB]] as const) {
    const path = join(dir, name);
    await mkdir(path);
    await writeFile(join(path, 'text'), Buffer.from('a line of text\n'.repeat(lines)));
    await writeFile(join(path, 'random'), noise(random, 2));
    const spooled = await spoolNar(path, { tempDir: dir, compressionLevel: 3, memoryLimit: 1 * MiB }, workers);
    t.after(() => spooled.dispose());
    const file = join(dir, `${name}.nar.zst`);
    const bytes = await collect(spooled.body());
    await writeFile(file, bytes);
    const splitter = new ZstdFrameSplitter();
    splitter.split(bytes);
    splitter.finish();
    assert.equal(splitter.frames, Math.ceil(spooled.narSize / (4 * MiB)), `${name}: frames of ${spooled.narSize} bytes`);
    assert.ok(name === 'whole' ? splitter.frames === 1 : splitter.frames > 1);
    const decoded = await new Promise<Buffer>((resolve, reject) =>
      execFile('zstd', ['-d', '-c', file], { encoding: 'buffer', maxBuffer: 64 * MiB }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
    ).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (decoded === undefined) return t.skip('the zstd program is not installed');
    assert.ok(decoded.equals(await collect(encodeNar(path))), name);
  }
});

test('a path that cannot be archived fails with an error naming it, leaves no temporary file, and the pool goes on', async (t) => {
  const dir = await tempDir(t);
  const spool = join(dir, 'spool');
  await mkdir(spool);
  const tree = join(dir, 'with-socket');
  await mkdir(tree);
  // Enough before the socket to start a temporary file.
  await writeFile(join(tree, 'a-big-file'), noise(3 * MiB, 3));
  const socket = join(tree, 'socket');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => server.close());

  const workers = pool(t, 2);
  const options = { tempDir: spool, compressionLevel: 3, memoryLimit: 1 * MiB };
  await assert.rejects(spoolNar(tree, options, workers), { message: `cannot put ${socket} in a NAR: it is a socket` });
  const missing = join(dir, 'gone');
  await assert.rejects(spoolNar(missing, options, workers), (error: NodeJS.ErrnoException) => {
    assert.equal(error.code, 'ENOENT');
    assert.ok(error.message.includes(missing), error.message);
    return true;
  });
  assert.deepEqual(await readdir(spool), []);

  // The same workers still work.
  const fine = join(dir, 'fine');
  await writeFile(fine, 'still fine\n');
  const spooled = await spoolNar(fine, options, workers);
  assert.equal(spooled.narSize, (await collect(encodeNar(fine))).length);
  assert.ok(workers.threads <= 2);
});

test('close() rejects what is queued and ends the workers', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'f'), noise(4 * MiB, 4));
  const workers = new NarPool({ size: 1 });
  const options = { tempDir: dir, compressionLevel: 3, memoryLimit: 64 * MiB };
  const jobs = [1, 2, 3].map(() => workers.prepare(join(dir, 'f'), options));
  for (const job of jobs) job.catch(() => {});
  await workers.close();
  for (const job of jobs) await assert.rejects(job, /the NAR pool was closed/);
  assert.equal(workers.threads, 0);
  await assert.rejects(workers.prepare(join(dir, 'f'), options), /closed/);
});

test('a process that used the shared pool exits on its own when done', async (t) => {
  const dir = await tempDir(t);
  await writeTree(Buffer.from(join(dir, 'tree')), generateTree(5));
  const spool = fileURLToPath(new URL('../../../src/client/push/nar-spool.ts', import.meta.url));
  const script = `
    import { spoolNar } from ${JSON.stringify(spool)};
    const options = { tempDir: ${JSON.stringify(dir)}, compressionLevel: 3, memoryLimit: 1 << 20 };
    const all = await Promise.all([1, 2, 3, 4].map(() => spoolNar(${JSON.stringify(join(dir, 'tree'))}, options)));
    await Promise.all(all.map((s) => s.dispose()));
    console.log(all.map((s) => s.fileHash).join(' '));
  `;
  const started = performance.now();
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 }, (error, out, err) =>
      error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
    );
    child.stdin?.end();
  });
  const seconds = (performance.now() - started) / 1000;
  const hashes = stdout.trim().split(' ');
  assert.equal(hashes.length, 4);
  assert.equal(new Set(hashes).size, 1);
  // Idle workers are ended after 10 s; the process must not wait for that.
  assert.ok(seconds < 8, `the process took ${seconds.toFixed(1)} s to exit`);
});
