// Loading a cache into the planner's graph, page by page, from a real SQLite index.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteIndex } from '../../src/index/sql-index.ts';
import { HashParts, loadPathGraph } from '../../src/services/gc-graph.ts';
import { cacheRecord, hashPart, narRecord, pathRecord } from '../index/index-suite.ts';

test('paths, NAR sizes (shared NARs once), references and pins, over many small pages', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'larder-graph-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const index = await openSqliteIndex(join(dir, 'index.sqlite'));
  t.after(() => index.close());
  await index.createCache(cacheRecord('main'));
  await index.createCache(cacheRecord('other'));
  const seeds = Array.from({ length: 30 }, (_, i) => `p${i}`);
  for (const [i, seed] of seeds.entries()) {
    await index.putNar({ ...narRecord('main', seed, { fileSize: 100 + i }), fileHash: pathRecord('main', seed).fileHash });
    const refs = [hashPart(seed), ...(i > 0 ? [hashPart(seeds[i - 1]!)] : []), ...(i > 2 ? [hashPart(seeds[0]!)] : []), hashPart('upstream-only')];
    await index.putPath(pathRecord('main', seed, refs));
  }
  // A path sharing p0's NAR, one in another cache, a pin.
  await index.putPath({ ...pathRecord('main', 'twin'), fileHash: pathRecord('main', 'p0').fileHash });
  await index.putPath(pathRecord('other', 'p5'));
  await index.putPin('main', 'top', hashPart('p29'), 1);
  await index.touchPaths('main', [hashPart('p7')], 1_800_000_000_000);

  const { graph, hashParts, pins } = await loadPathGraph(index, 'main', 4);
  assert.equal(graph.count, 31);
  const id = (seed: string) => hashParts.find(hashPart(seed));
  for (const seed of [...seeds, 'twin']) assert.equal(hashParts.at(id(seed)), hashPart(seed));
  assert.equal(hashParts.find(hashPart('absent')), -1);
  assert.equal(hashParts.find('short'), -1);

  const refsOf = (seed: string) => {
    const p = id(seed);
    return [...graph.refTargets.subarray(graph.refStart[p]!, graph.refStart[p + 1]!)].map((t) => hashParts.at(t)).sort();
  };
  assert.deepEqual(refsOf('p0'), [], 'self and upstream references left out');
  assert.deepEqual(refsOf('p1'), [hashPart('p0')]);
  assert.deepEqual(refsOf('p9'), [hashPart('p0'), hashPart('p8')].sort());
  assert.equal(graph.refTargets.length, 29 + 27);

  assert.equal(graph.nar[id('twin')], graph.nar[id('p0')], 'a shared NAR is one NAR');
  assert.equal(graph.narBytes.length, 30);
  assert.equal(graph.narBytes[graph.nar[id('p3')]!], 103);
  assert.equal(graph.accessedAt[id('p7')], 1_800_000_000_000);
  assert.equal(graph.accessedAt[id('p6')], pathRecord('main', 'p6').createdAt);
  assert.deepEqual(graph.pins, [{ name: 'top', path: id('p29') }]);
  assert.equal(pins[0]?.name, 'top');
});

test('hash parts not listed in order are still found (a database whose collation differs)', () => {
  const parts = ['b'.repeat(32), 'a'.repeat(32), 'c'.repeat(32), '0'.repeat(32)];
  const packed = new Uint8Array(parts.length * 32);
  parts.forEach((p, i) => packed.set(Buffer.from(p, 'latin1'), i * 32));
  const table = new HashParts(packed, parts.length, false);
  parts.forEach((p, i) => assert.equal(table.find(p), i));
  assert.equal(table.find('d'.repeat(32)), -1);
});
