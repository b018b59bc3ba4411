// The index's part of the dashboard (migration 6): usage counters added in
// batches and the bounded reads the pages make, on SQLite and on PostgreSQL,
// each test on a new database.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { PathRecord } from '../../src/index/cache-index.ts';
import { MIGRATIONS, migrate } from '../../src/index/migrations.ts';
import type { SqlIndex } from '../../src/index/sql-index.ts';
import { postgresService } from '../helpers/postgres-service.ts';
import { cacheRecord, hashPart, indexTest, narRecord, pathRecord, tokenRecord, type IndexBackend } from '../index/index-suite.ts';

function tempDbFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'larder-dash-index-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'index.sqlite');
}

const backends: IndexBackend[] = [
  { name: 'sqlite', fresh: async (t) => ({ type: 'sqlite', path: tempDbFile(t) }) },
  {
    name: 'postgres',
    fresh: async (t) => {
      const url = await postgresService(t);
      return url === undefined ? undefined : { type: 'postgres', url };
    },
  },
];

const DAY = 86_400_000;
const day0 = 20_000 * DAY;

/** A path with its NAR recorded first (so its file size is known), created at `createdAt`. */
async function putPathWithNar(index: SqlIndex, cache: string, seed: string, options: { refs?: string[]; createdAt?: number; fileSize?: number; narSize?: number } = {}): Promise<PathRecord> {
  await index.putNar(narRecord(cache, seed, { fileSize: options.fileSize ?? 1234, narSize: options.narSize ?? 5678 }));
  const path: PathRecord = {
    ...pathRecord(cache, seed, options.refs ?? []),
    narSize: options.narSize ?? 5678,
    createdAt: options.createdAt ?? 1_700_000_000_004,
  };
  assert.equal(await index.putPath(path), true);
  return path;
}

function usage(day: number, counts: { hits?: number; misses?: number; downloads?: number; byNar?: [string, number][] } = {}) {
  return {
    day,
    narinfoHits: counts.hits ?? 0,
    narinfoMisses: counts.misses ?? 0,
    narDownloads: counts.downloads ?? 0,
    downloadsByNar: new Map(counts.byNar ?? []),
  };
}

for (const backend of backends) {
  indexTest(backend, 'usage batches add up per cache and day; downloads go to every path using the NAR', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const a = await putPathWithNar(index, 'main', 'a');
    const b = await putPathWithNar(index, 'main', 'b');
    // A second path sharing a's NAR (as two outputs with identical contents can).
    const twin: PathRecord = { ...pathRecord('main', 'twin'), fileHash: a.fileHash };
    await index.putPath(twin);

    await index.recordUsage('main', usage(day0, { hits: 3, misses: 1, downloads: 2, byNar: [[a.fileHash, 2]] }));
    await index.recordUsage('main', usage(day0, { hits: 1, misses: 4, downloads: 1, byNar: [[a.fileHash, 1], [b.fileHash, 1], ['0'.repeat(52), 5]] }));
    await index.recordUsage('main', usage(day0 + DAY, { hits: 7 }));
    await index.recordUsage('other', usage(day0, { hits: 100 }));

    const history = await index.usageHistory('main', day0, 10);
    assert.deepEqual(history, [
      { day: day0, narinfoHits: 4, narinfoMisses: 5, narDownloads: 3, totals: null },
      { day: day0 + DAY, narinfoHits: 7, narinfoMisses: 0, narDownloads: 0, totals: null },
    ]);
    assert.equal((await index.pathSummary('main', a.hashPart))?.downloads, 3);
    assert.equal((await index.pathSummary('main', twin.hashPart))?.downloads, 3);
    assert.equal((await index.pathSummary('main', b.hashPart))?.downloads, 1);
    assert.deepEqual(await index.usageHistory('main', day0 + DAY, 10), [history[1]], 'from sinceDay on');
    assert.deepEqual(await index.usageHistory('main', day0, 1), [history[0]], 'at most limit days');
  });

  indexTest(backend, 'usage and size samples of a deleted cache are dropped without an error', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('gone'));
    await index.deleteCache('gone');
    await index.recordUsage('gone', usage(day0, { hits: 1, byNar: [['1'.repeat(52), 1]] }));
    await index.recordTotalsSample('gone', day0, { paths: 1, fileBytes: 2, narBytes: 3 });
    assert.deepEqual(await index.usageHistory('gone', 0, 10), []);
  });

  indexTest(backend, 'size samples: the last of a day wins, next to that day’s counts; totals sum the cache’s paths', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    assert.deepEqual(await index.cacheTotals('main'), { paths: 0, fileBytes: 0, narBytes: 0 });
    await putPathWithNar(index, 'main', 'a', { fileSize: 100, narSize: 1000 });
    await putPathWithNar(index, 'main', 'b', { fileSize: 20, narSize: 300 });
    // A path whose NAR was never recorded: no file size, counted as 0 bytes stored.
    await index.putPath({ ...pathRecord('main', 'c'), narSize: 7 });
    const totals = await index.cacheTotals('main');
    assert.deepEqual(totals, { paths: 3, fileBytes: 120, narBytes: 1307 });

    await index.recordUsage('main', usage(day0, { hits: 2 }));
    await index.recordTotalsSample('main', day0, { paths: 1, fileBytes: 1, narBytes: 1 });
    await index.recordTotalsSample('main', day0, totals);
    await index.recordTotalsSample('main', day0 + 2 * DAY, { paths: 9, fileBytes: 9, narBytes: 9 });
    assert.deepEqual(await index.usageHistory('main', 0, 10), [
      { day: day0, narinfoHits: 2, narinfoMisses: 0, narDownloads: 0, totals },
      { day: day0 + 2 * DAY, narinfoHits: 0, narinfoMisses: 0, narDownloads: 0, totals: { paths: 9, fileBytes: 9, narBytes: 9 } },
    ]);
    // Counting after a sample keeps the sample.
    await index.recordUsage('main', usage(day0, { misses: 1 }));
    assert.deepEqual((await index.usageHistory('main', day0, 1))[0]?.totals, totals);
  });

  indexTest(backend, 'most downloaded and most recent paths come in order, bounded, from one cache', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const paths = [];
    for (const [i, seed] of ['p0', 'p1', 'p2', 'p3'].entries()) paths.push(await putPathWithNar(index, 'main', seed, { createdAt: 1000 + i }));
    await putPathWithNar(index, 'other', 'elsewhere', { createdAt: 5000 });
    await index.recordUsage('main', usage(day0, { byNar: [[paths[0]!.fileHash, 5], [paths[2]!.fileHash, 9], [paths[3]!.fileHash, 1]] }));
    await index.recordUsage('other', usage(day0, { byNar: [[narRecord('other', 'elsewhere').fileHash, 50]] }));

    assert.deepEqual((await index.topDownloadedPaths('main', 10)).map((p) => [p.base, p.downloads]), [
      [paths[2]!.base, 9],
      [paths[0]!.base, 5],
      [paths[3]!.base, 1],
    ], 'never-downloaded paths are left out');
    assert.deepEqual((await index.topDownloadedPaths('main', 2)).map((p) => p.base), [paths[2]!.base, paths[0]!.base]);
    assert.deepEqual((await index.recentPaths('main', 3)).map((p) => p.createdAt), [1003, 1002, 1001]);
    const [newest] = await index.recentPaths('main', 1);
    assert.deepEqual(newest, {
      hashPart: paths[3]!.hashPart,
      base: paths[3]!.base,
      narSize: 5678,
      fileSize: 1234,
      createdAt: 1003,
      accessedAt: 1003,
      downloads: 1,
    });
    await index.touchPaths('main', [paths[3]!.hashPart], 99_000);
    assert.equal((await index.pathSummary('main', paths[3]!.hashPart))?.accessedAt, 99_000);
    assert.equal(await index.pathSummary('main', hashPart('absent')), undefined);
  });

  indexTest(backend, 'search: name part case-insensitively with LIKE wildcards taken literally, hash prefix, pages by hash', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    for (const seed of ['Hello-World-1.0', 'hello-2.12', 'foo_bar', 'fooXbar', 'glibc-2.40']) await putPathWithNar(index, 'main', seed);
    await putPathWithNar(index, 'other', 'hello-other');
    const names = async (query: { hashPrefix?: string; nameNeedle?: string }, after = '', limit = 50) =>
      (await index.searchPaths('main', query, after, limit)).map((p) => p.base.slice(33)).sort();

    assert.deepEqual(await names({ nameNeedle: 'hello' }), ['Hello-World-1.0', 'hello-2.12']);
    assert.deepEqual(await names({ nameNeedle: 'world' }), ['Hello-World-1.0']);
    assert.deepEqual(await names({ nameNeedle: 'o_b' }), ['foo_bar'], "'_' is not a wildcard");
    assert.deepEqual(await names({ nameNeedle: '%' }), [], "'%' is not a wildcard");
    const glibcHash = hashPart('glibc-2.40');
    assert.deepEqual(await names({ hashPrefix: glibcHash.slice(0, 6) }), ['glibc-2.40']);
    assert.deepEqual(await names({ hashPrefix: glibcHash.slice(0, 6), nameNeedle: 'foo' }), ['fooXbar', 'foo_bar', 'glibc-2.40'], 'either matches');
    assert.deepEqual(await names({ nameNeedle: glibcHash.slice(2, 10) }), [], 'the name, not the hash, is searched by substring');
    assert.deepEqual(await names({}), []);

    const all = await index.searchPaths('main', { nameNeedle: '' }, '', 50);
    assert.equal(all.length, 5);
    const hashes = all.map((p) => p.hashPart);
    assert.deepEqual(hashes, [...hashes].sort(), 'in hash order');
    const first = await index.searchPaths('main', { nameNeedle: '' }, '', 2);
    const second = await index.searchPaths('main', { nameNeedle: '' }, first.at(-1)!.hashPart, 2);
    const third = await index.searchPaths('main', { nameNeedle: '' }, second.at(-1)!.hashPart, 2);
    assert.deepEqual([...first, ...second, ...third].map((p) => p.hashPart), hashes);
    await assert.rejects(index.searchPaths('main', { hashPrefix: "x' OR 1=1 --" }, '', 5), RangeError);
  });

  indexTest(backend, 'referrers page by hash without the path itself; closure size walks references once each', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    // d <- b, d <- c, b <- a, c <- a (a diamond), d refers to itself.
    await putPathWithNar(index, 'main', 'd', { refs: [hashPart('d')], fileSize: 1, narSize: 10 });
    await putPathWithNar(index, 'main', 'b', { refs: [hashPart('d')], fileSize: 2, narSize: 20 });
    await putPathWithNar(index, 'main', 'c', { refs: [hashPart('d')], fileSize: 4, narSize: 40 });
    await putPathWithNar(index, 'main', 'a', { refs: [hashPart('b'), hashPart('c')], fileSize: 8, narSize: 80 });

    const referrers = await index.referringPaths('main', hashPart('d'), '', 10);
    assert.deepEqual(referrers.map((p) => p.hashPart), [hashPart('b'), hashPart('c')].sort());
    const page = await index.referringPaths('main', hashPart('d'), '', 1);
    const rest = await index.referringPaths('main', hashPart('d'), page[0]!.hashPart, 1);
    assert.deepEqual([...page, ...rest].map((p) => p.hashPart), referrers.map((p) => p.hashPart));
    assert.deepEqual(await index.referringPaths('main', hashPart('a'), '', 10), []);

    assert.deepEqual(await index.closureSize('main', hashPart('a'), 100), { paths: 4, fileBytes: 15, narBytes: 150, complete: true });
    assert.deepEqual(await index.closureSize('main', hashPart('b'), 100), { paths: 2, fileBytes: 3, narBytes: 30, complete: true });
    assert.deepEqual(await index.closureSize('main', hashPart('d'), 100), { paths: 1, fileBytes: 1, narBytes: 10, complete: true });
    assert.deepEqual(await index.closureSize('main', hashPart('absent'), 100), { paths: 0, fileBytes: 0, narBytes: 0, complete: true });
    // The walk stops at its limit and says so.
    const partial = await index.closureSize('main', hashPart('a'), 2);
    assert.equal(partial.complete, false);
    assert.equal(partial.paths, 2);
    assert.deepEqual(await index.closureSize('main', hashPart('a'), 5), { paths: 4, fileBytes: 15, narBytes: 150, complete: true });
    // A reference the cache lacks (an upstream's) is walked but not counted.
    await putPathWithNar(index, 'main', 'top', { refs: [hashPart('a'), hashPart('upstream-only')], fileSize: 16, narSize: 160 });
    assert.deepEqual(await index.closureSize('main', hashPart('top'), 100), { paths: 5, fileBytes: 31, narBytes: 310, complete: true });
  });

  indexTest(backend, 'tokens page newest first with a cursor, per cache or all; a token by id', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    for (const [id, cache, createdAt] of [
      ['a1', 'main', 10],
      ['a2', 'main', 20],
      ['a3', 'main', 20],
      ['b1', 'other', 15],
      ['s1', null, 30],
    ] as const) {
      await index.createToken(tokenRecord(id, cache, { createdAt }));
    }
    const ids = async (cache: string | undefined, before?: { createdAt: number; id: string }, limit = 10) =>
      (await index.tokensPage(cache, before, limit)).map((t) => t.id);
    assert.deepEqual(await ids(undefined), ['s1', 'a3', 'a2', 'b1', 'a1']);
    assert.deepEqual(await ids('main'), ['a3', 'a2', 'a1']);
    assert.deepEqual(await ids('main', undefined, 2), ['a3', 'a2']);
    assert.deepEqual(await ids('main', { createdAt: 20, id: 'a2' }, 2), ['a1']);
    assert.deepEqual(await ids(undefined, { createdAt: 20, id: 'a3' }, 2), ['a2', 'b1']);
    assert.deepEqual(await index.tokenById('b1'), tokenRecord('b1', 'other', { createdAt: 15 }));
    assert.equal(await index.tokenById('nope'), undefined);
  });

  indexTest(backend, 'migration 6 gives existing paths zero downloads', async (ctx) => {
    const raw = await ctx.raw();
    await migrate(raw, MIGRATIONS.filter((m) => m.version < 6));
    await raw.run('INSERT INTO caches (name, is_public, priority, compression, created_at) VALUES (?, ?, ?, ?, ?)', ['old', 0, 40, 'zstd', 5]);
    await raw.run('INSERT INTO paths (cache, hash_part, base, file_hash, nar_size, narinfo, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      'old', hashPart('p'), `${hashPart('p')}-p`, 'f'.repeat(52), 10, 'x', 123,
    ]);
    const index = await ctx.open();
    assert.equal((await index.pathSummary('old', hashPart('p')))?.downloads, 0);
    assert.deepEqual(await index.cacheTotals('old'), { paths: 1, fileBytes: 0, narBytes: 10 });
  });
}
