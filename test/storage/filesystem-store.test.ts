import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { test } from 'node:test';
import { StorageUnavailableError } from '../../src/storage/blob-store.ts';
import { FilesystemStore } from '../../src/storage/filesystem-store.ts';

async function tempStore(t: import('node:test').TestContext): Promise<{ store: FilesystemStore; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'larder-fs-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  return { store: await FilesystemStore.open(root), root };
}

test('put, stat, open (whole and ranged), list, delete', async (t) => {
  const { store } = await tempStore(t);
  await store.put('main/nar/abc.nar.zst', 'hello, world');
  await store.put('main/x.narinfo', 'info');
  assert.equal(await store.stat('main/nar/abc.nar.zst'), 12);
  assert.equal(await store.stat('main/missing'), undefined);
  assert.equal(await store.open('main/missing'), undefined);
  const whole = await store.open('main/nar/abc.nar.zst');
  assert.equal(whole?.size, 12);
  assert.equal(await text(whole!.stream), 'hello, world');
  const part = await store.open('main/nar/abc.nar.zst', { start: 7, end: 11 });
  assert.equal(part?.size, 12);
  assert.equal(await text(part!.stream), 'world');
  const keys = [];
  for await (const key of store.list('main')) keys.push(key);
  assert.deepEqual(keys.sort(), ['main/nar/abc.nar.zst', 'main/x.narinfo']);
  await store.delete('main/x.narinfo');
  await store.delete('main/x.narinfo');
  assert.equal(await store.stat('main/x.narinfo'), undefined);
});

test('a streamed write is invisible until commit, and abort leaves nothing', async (t) => {
  const { store, root } = await tempStore(t);
  const writer = await store.createWriter('c/nar/big.nar');
  writer.stream.write('part one, ');
  assert.equal(await store.stat('c/nar/big.nar'), undefined);
  writer.stream.write('part two');
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(await store.stat('c/nar/big.nar'), undefined);
  await writer.commit();
  assert.equal(await text((await store.open('c/nar/big.nar'))!.stream), 'part one, part two');

  const aborted = await store.createWriter('c/nar/other.nar');
  aborted.stream.write('junk');
  await aborted.abort();
  await aborted.abort();
  assert.equal(await store.stat('c/nar/other.nar'), undefined);
  assert.deepEqual(await readdir(join(root, '.tmp')), []);
});

test("a file's directory is made when it is missing, also after it was removed; a file in the way is refused", async (t) => {
  const { store, root } = await tempStore(t);
  await store.put('c/nar/a.nar', 'one');
  await rm(join(root, 'c'), { recursive: true });
  await store.put('c/nar/b.nar', 'two');
  assert.equal(await text((await store.open('c/nar/b.nar'))!.stream), 'two');
  await store.put('c/file', 'x');
  await assert.rejects(store.put('c/file/d.nar', 'three'), StorageUnavailableError);
  assert.deepEqual(await readdir(join(root, '.tmp')), []);
});

test('refuses keys that would leave the root', async (t) => {
  const { store } = await tempStore(t);
  for (const key of ['../etc/passwd', 'a/../../b', '/abs', 'a//b', 'a/./b', 'a\0b', '']) {
    await assert.rejects(store.put(key, 'x'), /invalid blob key/, key);
  }
});

test('a broken disk is "unavailable", not "missing"', async (t) => {
  const { store, root } = await tempStore(t);
  await rm(join(root, '.tmp'), { recursive: true });
  await writeFile(join(root, '.tmp'), 'not a directory');
  await assert.rejects(store.createWriter('main/x'), StorageUnavailableError);
});
