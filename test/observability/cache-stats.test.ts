// What each cache holds, as the index counts it for /metrics (on SQLite and on
// PostgreSQL), and the reader that keeps scrapes from hammering the index.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { IndexConfig } from '../../src/config/config.ts';
import type { CacheStats } from '../../src/index/cache-index.ts';
import { openIndex } from '../../src/index/open-index.ts';
import { CacheStatsReader } from '../../src/observability/cache-stats.ts';
import { postgresService } from '../helpers/postgres-service.ts';
import { cacheRecord, narRecord, pathRecord } from '../index/index-suite.ts';

const engines: { name: string; fresh: (t: TestContext) => Promise<IndexConfig | undefined> }[] = [
  {
    name: 'sqlite',
    fresh: async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'larder-stats-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      return { type: 'sqlite', path: join(dir, 'index.sqlite') };
    },
  },
  {
    name: 'postgres',
    fresh: async (t) => {
      const url = await postgresService(t);
      return url === undefined ? undefined : { type: 'postgres', url };
    },
  },
];

for (const engine of engines) {
  test(`${engine.name}: cacheStats counts each cache's paths, NAR files and their bytes`, async (t) => {
    const config = await engine.fresh(t);
    if (!config) return;
    const index = await openIndex(config);
    t.after(() => index.close());
    assert.deepEqual(await index.cacheStats(), []);
    for (const name of ['team', 'empty', 'alpha']) await index.createCache(cacheRecord(name));
    // Two paths share one NAR file (counted once); one NAR waits for its narinfo; sizes beyond 2^32.
    const shared = narRecord('team', 'shared', { fileSize: 5_000_000_000 });
    await index.putNar(shared);
    await index.putNar(narRecord('team', 'waiting', { fileSize: 777 }));
    await index.putPath({ ...pathRecord('team', 'one'), fileHash: shared.fileHash });
    await index.putPath({ ...pathRecord('team', 'two'), fileHash: shared.fileHash });
    const own = narRecord('alpha', 'own', { fileSize: 10 });
    await index.putNar(own);
    await index.putPath({ ...pathRecord('alpha', 'own'), fileHash: own.fileHash });
    const expected: CacheStats[] = [
      { cache: 'alpha', paths: 1, nars: 1, narBytes: 10 },
      { cache: 'empty', paths: 0, nars: 0, narBytes: 0 },
      { cache: 'team', paths: 2, nars: 2, narBytes: 5_000_000_777 },
    ];
    assert.deepEqual(await index.cacheStats(), expected);
  });
}

test('the reader answers from one query for its maximum age, shares a query in flight, and retries after a failure', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'larder-stats-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const index = await openIndex({ type: 'sqlite', path: join(dir, 'index.sqlite') });
  t.after(() => index.close());
  await index.createCache(cacheRecord('main'));
  let queries = 0;
  let failNext = false;
  const counted = {
    cacheStats: () => {
      queries++;
      if (failNext) {
        failNext = false;
        return Promise.reject(new Error('index down'));
      }
      return index.cacheStats();
    },
  };
  let clock = 1_000_000;
  const reader = new CacheStatsReader(counted, 10_000, () => clock);

  const together = await Promise.all([reader.read(), reader.read(), reader.read()]);
  assert.equal(queries, 1, 'concurrent reads share one query');
  assert.deepEqual(together[0], [{ cache: 'main', paths: 0, nars: 0, narBytes: 0 }]);

  await index.putNar(narRecord('main', 'a', { fileSize: 42 }));
  clock += 9_999;
  assert.deepEqual(await reader.read(), together[0], 'still within its age: no query');
  assert.equal(queries, 1);
  clock += 1;
  assert.deepEqual(await reader.read(), [{ cache: 'main', paths: 0, nars: 1, narBytes: 42 }]);
  assert.equal(queries, 2);

  clock += 10_000;
  failNext = true;
  await assert.rejects(reader.read(), /index down/);
  assert.deepEqual(await reader.read(), [{ cache: 'main', paths: 0, nars: 1, narBytes: 42 }], 'a failure is not remembered');
  assert.equal(queries, 4);
});
