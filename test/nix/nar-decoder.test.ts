// decodeNar, verifyNar and NarVerifier: trees come back out of NARs intact
// (Nix's and ours, in any chunking), and NarHash/NarSize agree with Nix.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeNar, NarVerifier, verifyNar } from '../../src/nix/nar-decoder.ts';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { NarError } from '../../src/nix/nar-parser.ts';
import { nixEnv, skipWithoutNix } from '../helpers/nix-env.ts';
import {
  chunked, collect, decodeTree, generateTree, narTreeOf, nixDump, seededRandom, sha256Hex, tempDir, writeTree, type FsTree,
} from './nar-fixtures.ts';

async function encodedTree(dir: string, name: string, tree: FsTree): Promise<Buffer> {
  const path = join(dir, name);
  await writeTree(Buffer.from(path), tree);
  return collect(encodeNar(path));
}

const sample: FsTree = {
  type: 'directory',
  entries: [
    [Buffer.from('big'), { type: 'regular', mode: 0o644, contents: Buffer.alloc(100_000, 'z') }],
    [Buffer.from('bin'), { type: 'directory', entries: [[Buffer.from('run'), { type: 'regular', mode: 0o755, contents: Buffer.from('#!/bin/sh\n') }]] }],
    [Buffer.from('link'), { type: 'symlink', target: Buffer.from('bin/run') }],
  ],
};

test('decodeNar yields each entry in order, with its path as name bytes', async (t) => {
  const nar = await encodedTree(await tempDir(t), 'sample', sample);
  const seen: string[] = [];
  for await (const entry of decodeNar(chunked(nar, () => 1000))) {
    const path = entry.path.map(String).join('/');
    if (entry.type === 'regular') {
      const contents = await collect(entry.contents);
      assert.equal(contents.length, entry.size);
      assert.deepEqual(nar.subarray(entry.narOffset, entry.narOffset + entry.size), contents);
      seen.push(`regular ${path} ${entry.executable} ${entry.size}`);
    } else if (entry.type === 'symlink') {
      seen.push(`symlink ${path} ${entry.target}`);
    } else {
      seen.push(`directory ${path}`);
    }
  }
  assert.deepEqual(seen, ['directory ', 'regular big false 100000', 'directory bin', 'regular bin/run true 10', 'symlink link bin/run']);
});

test('contents left unread are skipped, and cannot be read once the next entry is out', async (t) => {
  const nar = await encodedTree(await tempDir(t), 'sample', sample);
  const entries = [];
  for await (const entry of decodeNar(chunked(nar, () => 4096))) entries.push(entry);
  assert.deepEqual(entries.map((entry) => entry.type), ['directory', 'regular', 'directory', 'regular', 'symlink']);
  const big = entries[1]!;
  assert.ok(big.type === 'regular');
  await assert.rejects(collect(big.contents), /contents read after moving on to the next entry/);
});

test('decodeNar fails with NarError on a malformed NAR and closes its source', async (t) => {
  const nar = await encodedTree(await tempDir(t), 'sample', sample);
  let closed = false;
  async function* source(): AsyncGenerator<Buffer> {
    try {
      yield* chunked(nar.subarray(0, 5000), () => 512);
    } finally {
      closed = true;
    }
  }
  await assert.rejects(
    async () => {
      for await (const entry of decodeNar(source())) if (entry.type === 'regular') await collect(entry.contents);
    },
    (error) => error instanceof NarError && error.message === 'NAR byte 5000: unexpected end of archive',
  );
  assert.ok(closed);
});

test('NarVerifier, fed chunk by chunk, agrees with verifyNar and sha256', async (t) => {
  const nar = await encodedTree(await tempDir(t), 'sample', sample);
  const verifier = new NarVerifier({ listing: true });
  for await (const chunk of chunked(nar, () => 777)) verifier.push(chunk);
  const summary = verifier.finish();
  assert.equal(summary.narHash.toString('hex'), sha256Hex(nar));
  assert.equal(summary.narSize, nar.length);
  assert.deepEqual(summary, await verifyNar(chunked(nar, () => 1 << 16), { listing: true }));
  assert.equal((await verifyNar(chunked(nar, () => 100))).listing, undefined);

  const truncated = new NarVerifier();
  truncated.push(nar.subarray(0, 100));
  assert.throws(() => truncated.finish(), NarError);
  const garbled = new NarVerifier();
  assert.throws(() => garbled.push(Buffer.from('not a nar at all')), NarError);
});

test('every generated tree comes back out of nix-store --dump, with its NarHash and NarSize', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const dir = await tempDir(t);
  for (let seed = 1; seed <= 60; seed++) {
    const tree = generateTree(seed);
    const path = join(dir, `tree-${seed}`);
    await writeTree(Buffer.from(path), tree);
    const theirs = await nixDump(nix, path);
    const random = seededRandom(seed);
    const maxChunk = [16, 4096, 1 << 20][seed % 3]!;
    assert.deepEqual(await decodeTree(chunked(theirs, () => 1 + Math.floor(random() * maxChunk))), narTreeOf(tree), `seed ${seed}`);

    const verifier = new NarVerifier();
    for (let pos = 0; pos < theirs.length; pos++) verifier.push(theirs.subarray(pos, pos + 1));
    const { narHash, narSize } = verifier.finish();
    assert.equal(narHash.toString('hex'), createHash('sha256').update(theirs).digest('hex'), `seed ${seed}`);
    assert.equal(narSize, theirs.length);
  }
});

// Names: any bytes but "/" and NUL, except "." and "..".
const name = fc
  .uint8Array({ minLength: 1, maxLength: 12 })
  .map((bytes) => Buffer.from(bytes.map((byte) => (byte === 0 || byte === 0x2f ? 0x5f : byte))))
  .filter((bytes) => !['.', '..'].includes(bytes.toString('latin1')));
const { tree } = fc.letrec<{ tree: FsTree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .tuple(fc.constantFrom(0o644, 0o755, 0o700, 0o654), fc.uint8Array({ maxLength: 3000 }))
      .map(([mode, contents]) => ({ type: 'regular' as const, mode, contents: Buffer.from(contents) })),
    fc
      .uint8Array({ minLength: 1, maxLength: 64 })
      .map((target) => ({ type: 'symlink' as const, target: Buffer.from(target.map((byte) => byte || 1)) })),
    fc.uniqueArray(fc.tuple(name, tie('tree')), { maxLength: 5, selector: ([entry]) => entry.toString('hex') }).map((entries) => ({
      type: 'directory' as const,
      entries: entries.sort(([a], [b]) => Buffer.compare(a, b)),
    })),
  ),
}));

test('property: random trees survive encode and decode in random chunks', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(tree, fc.integer({ min: 1, max: 2048 }), fc.integer(), async (fsTree, maxChunk, seed) => {
      const nar = await encodedTree(dir, `tree-${run++}`, fsTree);
      const random = seededRandom(seed);
      assert.deepEqual(await decodeTree(chunked(nar, () => 1 + Math.floor(random() * maxChunk))), narTreeOf(fsTree));
    }),
    { numRuns: 60 },
  );
});
