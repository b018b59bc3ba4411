// The index on SQLite: the shared suite, and what only the embedded engine does.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { IndexUnavailableError } from '../../src/index/cache-index.ts';
import { openIndex } from '../../src/index/open-index.ts';
import { openSqliteIndex } from '../../src/index/sql-index.ts';
import { cacheRecord, defineIndexSuite, indexTest, pathRecord, type IndexBackend } from './index-suite.ts';

function tempDbFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'larder-index-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'index.sqlite');
}

const sqlite: IndexBackend = { name: 'sqlite', fresh: async (t) => ({ type: 'sqlite', path: tempDbFile(t) }) };

defineIndexSuite(sqlite);

indexTest(sqlite, 'the directory of a new database file is created', async (ctx) => {
  if (ctx.config.type !== 'sqlite') throw new Error('not sqlite');
  const nested = { ...ctx.config, path: join(ctx.config.path, '..', 'a', 'b', 'index.sqlite') };
  const index = await openIndex(nested);
  ctx.t.after(() => index.close());
  assert.equal(await index.schemaVersion(), 6);
});

indexTest(sqlite, 'a write that cannot get the lock in time is an IndexUnavailableError; reads go on', async (ctx) => {
  if (ctx.config.type !== 'sqlite') throw new Error('not sqlite');
  const waiting = await openSqliteIndex(ctx.config.path, { busyTimeoutMs: 20 });
  ctx.t.after(() => waiting.close());
  await waiting.createCache(cacheRecord('main'));
  const holder = await ctx.raw();

  await holder.transaction(async (tx) => {
    await tx.run('UPDATE caches SET priority = 1');
    await assert.rejects(waiting.createCache(cacheRecord('other')), IndexUnavailableError);
    await assert.rejects(waiting.putPath(pathRecord('main', 'p')), IndexUnavailableError);
    await assert.rejects(waiting.acquireLease('gc', 'me', 1000), IndexUnavailableError);
    assert.equal((await waiting.getCache('main'))?.priority, 40, 'readers see the last commit');
  });
  await waiting.createCache(cacheRecord('other'));
  assert.equal(await waiting.putPath(pathRecord('main', 'p')), true);
  assert.equal((await waiting.getCache('main'))?.priority, 1);
});
