// The dashboard's counts (narinfo hits and misses, NAR downloads) are noted in
// memory by the access log and written in batches, one per cache and day; a
// batch that fails is kept whole and never written twice.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CacheIndex, CacheTotals, UsageBatch } from '../../src/index/cache-index.ts';
import { openSqliteIndex } from '../../src/index/sql-index.ts';
import { AccessLog, dayOf } from '../../src/services/access-log.ts';
import { cacheRecord, narRecord, pathRecord } from '../index/index-suite.ts';

const DAY = 86_400_000;

interface Recorded {
  usage: { cache: string; batch: { day: number; hits: number; misses: number; downloads: number; byNar: Record<string, number> } }[];
  touched: { kind: 'path' | 'nar'; cache: string; keys: string[] }[];
  samples: { cache: string; day: number; totals: CacheTotals }[];
}

function recordingIndex(failFor: Set<string> = new Set()): { index: CacheIndex; recorded: Recorded } {
  const recorded: Recorded = { usage: [], touched: [], samples: [] };
  const index = {
    recordUsage: async (cache: string, batch: UsageBatch) => {
      if (failFor.has(cache)) throw new Error(`index down for ${cache}`);
      recorded.usage.push({
        cache,
        batch: {
          day: batch.day,
          hits: batch.narinfoHits,
          misses: batch.narinfoMisses,
          downloads: batch.narDownloads,
          byNar: Object.fromEntries(batch.downloadsByNar),
        },
      });
    },
    touchPaths: async (cache: string, keys: readonly string[]) => void recorded.touched.push({ kind: 'path', cache, keys: [...keys].sort() }),
    touchPathsByNar: async (cache: string, keys: readonly string[]) => void recorded.touched.push({ kind: 'nar', cache, keys: [...keys].sort() }),
    listCaches: async () => [cacheRecord('main'), cacheRecord('other')],
    cacheTotals: async (cache: string) => ({ paths: cache.length, fileBytes: 10, narBytes: 20 }),
    recordTotalsSample: async (cache: string, day: number, totals: CacheTotals) => void recorded.samples.push({ cache, day, totals }),
  };
  return { index: index as unknown as CacheIndex, recorded };
}

test('hits, misses and downloads are counted per cache and UTC day; served and downloaded paths are accesses too', async () => {
  const { index, recorded } = recordingIndex();
  let now = 30 * DAY - 1000;
  const log = new AccessLog(index, { now: () => now });
  log.narinfoServed('main', 'h1');
  log.narinfoServed('main', 'h2');
  log.narinfoMissing('main');
  log.narDownloaded('main', 'f1');
  log.narDownloaded('main', 'f1');
  log.narDownloaded('other', 'f9');
  now = 30 * DAY + 1000; // past midnight: a new day
  log.narinfoServed('main', 'h1');
  log.narDownloaded('main', 'f2');
  await log.flush();
  assert.deepEqual(
    recorded.usage.sort((a, b) => a.batch.day - b.batch.day || a.cache.localeCompare(b.cache)),
    [
      { cache: 'main', batch: { day: 29 * DAY, hits: 2, misses: 1, downloads: 2, byNar: { f1: 2 } } },
      { cache: 'other', batch: { day: 29 * DAY, hits: 0, misses: 0, downloads: 1, byNar: { f9: 1 } } },
      { cache: 'main', batch: { day: 30 * DAY, hits: 1, misses: 0, downloads: 1, byNar: { f2: 1 } } },
    ],
  );
  const touched = recorded.touched.flatMap((t) => t.keys.map((k) => `${t.cache}/${t.kind}/${k}`)).sort();
  assert.deepEqual(touched, ['main/nar/f1', 'main/nar/f2', 'main/path/h1', 'main/path/h2', 'other/nar/f9'], 'h1 twice: its later access, once');
  assert.equal(log.pending, 0);
  await log.flush();
  assert.equal(recorded.usage.length, 3, 'nothing is written twice');
});

test('a batch that fails is kept whole and added to what is counted next; the others are not written again', async () => {
  const failFor = new Set(['other']);
  const { index, recorded } = recordingIndex(failFor);
  const log = new AccessLog(index, { now: () => 5 * DAY });
  log.narDownloaded('main', 'a');
  log.narDownloaded('other', 'b');
  log.narinfoMissing('other');
  await assert.rejects(log.flush(), /index down for other/);
  assert.deepEqual(recorded.usage.map((u) => u.cache), ['main']);
  log.narDownloaded('other', 'b');
  log.narDownloaded('other', 'c');
  failFor.clear();
  await log.flush();
  assert.deepEqual(recorded.usage, [
    { cache: 'main', batch: { day: 5 * DAY, hits: 0, misses: 0, downloads: 1, byNar: { a: 1 } } },
    { cache: 'other', batch: { day: 5 * DAY, hits: 0, misses: 1, downloads: 3, byNar: { b: 2, c: 1 } } },
  ]);
});

test('many distinct NARs start a flush early', async () => {
  const { index, recorded } = recordingIndex();
  const log = new AccessLog(index, { now: () => DAY, maxEntries: 4 });
  log.narDownloaded('main', 'a'); // one access note and one counted NAR
  log.narDownloaded('main', 'b'); // four: full
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(recorded.usage.length, 1);
  assert.deepEqual(recorded.usage[0]!.batch.byNar, { a: 1, b: 1 });
});

test('size samples record every cache’s totals under today', async () => {
  const { index, recorded } = recordingIndex();
  const now = 12 * DAY + 5 * 3_600_000;
  const log = new AccessLog(index, { now: () => now });
  await log.sampleSizes();
  assert.deepEqual(recorded.samples, [
    { cache: 'main', day: dayOf(now), totals: { paths: 4, fileBytes: 10, narBytes: 20 } },
    { cache: 'other', day: dayOf(now), totals: { paths: 5, fileBytes: 10, narBytes: 20 } },
  ]);
  assert.equal(dayOf(now), 12 * DAY);
});

test('on a real index: downloads reach the paths, counts the day, samples the size', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'larder-usage-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const index = await openSqliteIndex(join(dir, 'index.sqlite'));
  t.after(() => index.close());
  await index.createCache(cacheRecord('main'));
  await index.putNar(narRecord('main', 'p'));
  await index.putPath(pathRecord('main', 'p'));
  const path = pathRecord('main', 'p');
  const now = 1_800_000_000_777; // after the sample path's creation
  const log = new AccessLog(index, { now: () => now });
  log.narinfoServed('main', path.hashPart);
  log.narDownloaded('main', path.fileHash);
  log.narDownloaded('main', path.fileHash);
  log.narinfoMissing('main');
  await log.flush();
  await log.sampleSizes();
  const summary = await index.pathSummary('main', path.hashPart);
  assert.equal(summary?.downloads, 2);
  assert.equal(summary?.accessedAt, 1_800_000_000_000, 'access times to the second');
  assert.deepEqual(await index.usageHistory('main', 0, 10), [
    { day: dayOf(now), narinfoHits: 1, narinfoMisses: 1, narDownloads: 2, totals: { paths: 1, fileBytes: 1234, narBytes: 5678 } },
  ]);
});
