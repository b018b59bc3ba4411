// The index on PostgreSQL: the shared suite, and what only a database shared
// by many replicas brings: migrations racing, row locks, writers running at once.

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { IndexUnavailableError } from '../../src/index/cache-index.ts';
import { MIGRATIONS, migrate } from '../../src/index/migrations.ts';
import { openIndex } from '../../src/index/open-index.ts';
import { openPostgres } from '../../src/index/postgres-driver.ts';
import type { SqlDriver } from '../../src/index/sql-driver.ts';
import { openPostgresIndex, type SqlIndex } from '../../src/index/sql-index.ts';
import { postgresService } from '../helpers/postgres-service.ts';
import { cacheRecord, defineIndexSuite, hashPart, indexTest, upstream, type IndexBackend } from './index-suite.ts';
import { closedPort } from './tcp-proxy.ts';

const postgres: IndexBackend = {
  name: 'postgres',
  fresh: async (t) => {
    const url = await postgresService(t);
    return url === undefined ? undefined : { type: 'postgres', url };
  },
};

defineIndexSuite(postgres);

function urlOf(ctx: { config: { type: string } & ({ url: string } | { path: string }) }): string {
  if (!('url' in ctx.config)) throw new Error('not postgres');
  return ctx.config.url;
}

async function driver(t: TestContext, url: string): Promise<SqlDriver> {
  const db = await openPostgres(url);
  t.after(() => db.close());
  return db;
}

async function versions(db: SqlDriver): Promise<number[]> {
  const rows = await db.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((r) => r.version);
}

indexTest(postgres, 'pools migrating a fresh database at once: one applies every migration, the others none', async (ctx) => {
  const url = urlOf(ctx);
  const pools = await Promise.all(Array.from({ length: 4 }, () => driver(ctx.t, url)));
  const results = await Promise.all(pools.map((db) => migrate(db)));
  const all = MIGRATIONS.map((m) => m.version);
  assert.deepEqual(
    results.map((r) => r.applied.length).sort(),
    [0, 0, 0, all.length],
  );
  for (const result of results) assert.equal(result.version, Math.max(...all));
  assert.deepEqual(await versions(pools[0]!), all);
});

indexTest(postgres, 'replicas opening the index at once, each with writes right after, all succeed', async (ctx) => {
  const url = urlOf(ctx);
  const indexes = await Promise.all(Array.from({ length: 4 }, () => openPostgresIndex(url)));
  ctx.t.after(() => Promise.all(indexes.map((index) => index.close())));
  await Promise.all(indexes.map((index, i) => index.createCache(cacheRecord(`r${i}`))));
  assert.deepEqual(
    (await indexes[0]!.listCaches()).map((c) => c.name),
    ['r0', 'r1', 'r2', 'r3'],
  );
});

indexTest(postgres, 'a write waiting on a row lock past the lock timeout is an IndexUnavailableError; reads go on', async (ctx) => {
  const waiting = await openPostgresIndex(urlOf(ctx), { lockTimeoutMs: 100 });
  ctx.t.after(() => waiting.close());
  await waiting.createCache(cacheRecord('main'));
  const holder = await ctx.raw();

  await holder.transaction(async (tx) => {
    await tx.run('UPDATE caches SET priority = 1');
    await assert.rejects(waiting.updateCache('main', { priority: 2 }), IndexUnavailableError);
    await assert.rejects(waiting.deleteCache('main'), IndexUnavailableError);
    // Rows the holder does not lock are written at once: writers do not queue behind one another.
    await waiting.createCache(cacheRecord('other'));
    assert.equal((await waiting.getCache('main'))?.priority, 40, 'readers see the last commit');
  });
  assert.equal((await waiting.updateCache('main', { priority: 2 }))?.priority, 2);
});

indexTest(postgres, 'answers recorded while the upstream is being removed are dropped, not an error', async (ctx) => {
  const index = await ctx.open();
  await index.createCache(cacheRecord('main'));
  const a = upstream('https://a.example');
  await index.setUpstreams('main', [a]);
  const remover = await ctx.raw();

  let recording: Promise<void> | undefined;
  await remover.transaction(async (tx) => {
    await tx.run('DELETE FROM upstreams WHERE cache = ? AND url = ?', ['main', a.url]);
    // Checks the upstream while the removal is not yet committed; must wait for it rather than
    // insert answers that refer to a row about to be gone.
    recording = index.recordUpstreamPresence({ cache: 'main', ...a }, [{ hashPart: hashPart('p'), present: true, checkedAt: 1 }]);
    await new Promise((resolve) => setTimeout(resolve, 200));
  });
  await recording;
  assert.deepEqual(await index.getUpstreamPresence('main', [hashPart('p')]), []);
  assert.deepEqual(await index.listUpstreams('main'), []);
});

indexTest(postgres, 'the index keeps answering after the server drops its connections', async (ctx) => {
  const index: SqlIndex = await ctx.open();
  await index.createCache(cacheRecord('main'));
  const admin = await ctx.raw();
  const database = new URL(urlOf(ctx)).pathname.slice(1);
  await admin.all('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()', [database]);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(await index.getCache('main'), cacheRecord('main'));
});

indexTest(postgres, 'an index configured on a server that does not answer is an IndexUnavailableError', async () => {
  const url = `postgres://postgres@127.0.0.1:${await closedPort()}/larder`;
  await assert.rejects(openIndex({ type: 'postgres', url }), IndexUnavailableError);
});

indexTest(postgres, 'replacing one cache’s upstreams from two replicas at once leaves one list or the other, never a mix', async (ctx) => {
  const [a, b] = [await ctx.open(), await ctx.open()];
  await a.createCache(cacheRecord('main'));
  const left = [upstream('https://left-1.example'), upstream('https://left-2.example')];
  const right = [upstream('https://right-1.example'), upstream('https://right-2.example')];
  for (let round = 0; round < 20; round++) {
    await a.setUpstreams('main', []);
    await Promise.all([a.setUpstreams('main', left), b.setUpstreams('main', right)]);
    const urls = (await a.listUpstreams('main')).map((u) => u.url);
    assert.ok(
      [left, right].some((list) => JSON.stringify(list.map((u) => u.url)) === JSON.stringify(urls)),
      `round ${round}: ${urls.join(', ')}`,
    );
  }
});
