// NAR listings: the shape Nix writes (executable only when true, narOffset
// pointing at the contents), compared with the `.ls` files `nix copy` writes.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { verifyNar } from '../../src/nix/nar-decoder.ts';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { formatNarListing, type NarListing } from '../../src/nix/nar-listing.ts';
import { parseNarInfo } from '../../src/nix/narinfo.ts';
import { nixEnv, skipWithoutNix } from '../helpers/nix-env.ts';
import { collect, tempDir, writeTree, type FsTree } from './nar-fixtures.ts';

const regular = (contents: string, mode = 0o644): FsTree => ({ type: 'regular', mode, contents: Buffer.from(contents) });
const symlink = (target: string): FsTree => ({ type: 'symlink', target: Buffer.from(target) });
const directory = (entries: Record<string, FsTree>): FsTree => ({
  type: 'directory',
  entries: Object.entries(entries).map(([name, node]) => [Buffer.from(name), node] as const).sort(([a], [b]) => Buffer.compare(a, b)),
});

// Executable and not, symlinks dangling and not, nested and empty directories,
// and names that trip up JavaScript objects or sort unlike numbers.
const tree = directory({
  bin: directory({ run: regular('#!/bin/sh\necho hi\n', 0o755), 'group-only': regular('x', 0o654) }),
  'a.txt': regular('hello\n'),
  empty: regular(''),
  'empty-dir': directory({}),
  link: symlink('a.txt'),
  dangling: symlink('/nonexistent/target'),
  ['__proto__']: regular('not a prototype\n'), // computed, so an own entry rather than the literal's prototype
  '10': regular('ten'),
  '9': regular('nine'),
  'é': directory({ deeper: directory({ f: regular('deep', 0o700) }) }),
});

async function listingOf(path: string): Promise<NarListing> {
  const { listing } = await verifyNar(encodeNar(path), { listing: true });
  assert.ok(listing);
  return listing;
}

test('the listing has Nix\'s shape, and every narOffset points at the file\'s contents', async (t) => {
  const path = join(await tempDir(t), 'tree');
  await writeTree(Buffer.from(path), tree);
  const listing = await listingOf(path);
  const nar = await collect(encodeNar(path));

  assert.equal(listing.root.type, 'directory');
  const { entries } = listing.root;
  assert.deepEqual(Object.keys(entries).sort(), ['10', '9', '__proto__', 'a.txt', 'bin', 'dangling', 'empty', 'empty-dir', 'link', 'é']);
  assert.ok(Object.hasOwn(entries, '__proto__'));

  const json = JSON.parse(formatNarListing(listing));
  assert.equal(json.version, 1);
  assert.deepEqual(json.root.entries['link'], { type: 'symlink', target: 'a.txt' });
  assert.deepEqual(json.root.entries['empty-dir'], { type: 'directory', entries: {} });
  // Keys in Nix's order; group-execute alone does not make a file executable, and false is left out.
  const bin = json.root.entries['bin'].entries;
  assert.deepEqual(Object.entries(bin['run']).slice(0, 3), [['type', 'regular'], ['size', 18], ['executable', true]]);
  assert.deepEqual(Object.keys(bin['run']), ['type', 'size', 'executable', 'narOffset']);
  assert.deepEqual(Object.keys(bin['group-only']), ['type', 'size', 'narOffset']);

  const files: [string[], string][] = [
    [['a.txt'], 'hello\n'], [['empty'], ''], [['__proto__'], 'not a prototype\n'], [['10'], 'ten'], [['9'], 'nine'],
    [['bin', 'run'], '#!/bin/sh\necho hi\n'], [['bin', 'group-only'], 'x'], [['é', 'deeper', 'f'], 'deep'],
  ];
  for (const [names, contents] of files) {
    const node = names.reduce((parent, name) => parent.entries[name], json.root);
    assert.equal(nar.subarray(node.narOffset, node.narOffset + node.size).toString(), contents, names.join('/'));
  }
  assert.match(formatNarListing(listing), /^\{"version":1,"root":\{"type":"directory","entries":\{"10":/);
});

test('listings match the .ls files nix copy writes', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const sources = join(nix.dir, 'sources');
  // "café" in Latin-1: not UTF-8.
  const notUtf8: FsTree = { type: 'directory', entries: [[Buffer.from('café', 'latin1'), regular('latin1')]] };
  await writeTree(Buffer.from(sources), directory({
    tree,
    'single-file': regular('just a file\n', 0o755),
    'single-link': symlink('somewhere/else'),
    'not-utf8': notUtf8,
  }));

  const paths: string[] = [];
  for (const name of ['tree', 'single-file', 'single-link', 'not-utf8']) {
    paths.push((await nix.run('nix-store', ['--add', join(sources, name)])).stdout.trim());
  }
  const cache = join(nix.dir, 'cache');
  await nix.run('nix', ['copy', '--to', `file://${cache}?write-nar-listing=true&compression=none`, ...paths]);

  for (const path of paths) {
    const hashPart = path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    const ours = await listingOf(path);
    // Nix writes names that are not UTF-8 as raw bytes; read as UTF-8 they
    // become U+FFFD, which is what our listing holds.
    const theirs = await readFile(join(cache, `${hashPart}.ls`), 'utf8');
    assert.deepEqual(JSON.parse(formatNarListing(ours)), JSON.parse(theirs), path);
    if (!path.endsWith('not-utf8')) assert.equal(formatNarListing(ours), theirs, `${path}: same bytes`);

    const info = parseNarInfo(await readFile(join(cache, `${hashPart}.narinfo`), 'utf8'));
    const { narHash, narSize } = await verifyNar(encodeNar(path));
    assert.deepEqual(narHash, info.narHash.digest, `${path}: NarHash`);
    assert.equal(narSize, info.narSize, `${path}: NarSize`);
  }
});
