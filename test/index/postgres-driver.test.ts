import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { IndexUnavailableError } from '../../src/index/cache-index.ts';
import { openPostgres, type PostgresOptions } from '../../src/index/postgres-driver.ts';
import type { SqlDriver } from '../../src/index/sql-driver.ts';
import { postgresService } from '../helpers/postgres-service.ts';
import { defineDriverSuite, keys, openTable, type DriverBackend } from './driver-suite.ts';
import { closedPort, TcpProxy } from './tcp-proxy.ts';

async function open(t: TestContext, url: string, options?: PostgresOptions): Promise<SqlDriver> {
  const db = await openPostgres(url, options);
  t.after(() => db.close());
  return db;
}

const postgres: DriverBackend = {
  name: 'postgres',
  open: async (t) => {
    const url = await postgresService(t);
    return url === undefined ? undefined : open(t, url);
  },
};

defineDriverSuite(postgres);

/** A URL that reaches the same database through `proxy`. */
function viaProxy(url: string, proxy: TcpProxy): string {
  const proxied = new URL(url);
  proxied.port = String(proxy.port);
  return proxied.href;
}

async function proxied(t: TestContext, url: string): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(Number(new URL(url).port));
  t.after(() => proxy.close());
  return proxy;
}

/** Resolves with how long `promise` took to reject, asserting that it rejects with IndexUnavailableError. */
async function unavailableWithin(promise: Promise<unknown>, ms: number): Promise<number> {
  const started = performance.now();
  await assert.rejects(promise, IndexUnavailableError);
  const took = performance.now() - started;
  assert.ok(took < ms, `took ${Math.round(took)} ms, more than ${ms}`);
  return took;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test('postgres: BIGINT beyond 2^53 is an error, never a rounded number; the driver goes on', async (t) => {
  const db = await openTable(postgres, t);
  if (!db) return;
  await assert.rejects(db.get('SELECT 9007199254740993::bigint AS v'), /9007199254740993 is outside JavaScript's safe integer range/);
  assert.deepEqual(await db.get('SELECT 9007199254740991::bigint AS v, 2147483648::bigint AS w, 7::integer AS x'), {
    v: Number.MAX_SAFE_INTEGER,
    w: 2 ** 31,
    x: 7,
  });
});

test("postgres: the BIGINT parser is the driver's own: other pg clients in the process keep pg's defaults", async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const db = await open(t, url);
  assert.deepEqual(await db.get('SELECT 5::bigint AS v'), { v: 5 });
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  t.after(() => client.end());
  assert.deepEqual((await client.query('SELECT 5::bigint AS v')).rows, [{ v: '5' }]);
});

test('postgres: a server nobody listens for is an IndexUnavailableError at once', async () => {
  const url = `postgres://postgres@127.0.0.1:${await closedPort()}/larder`;
  await unavailableWithin(openPostgres(url, { connectTimeoutMs: 1000 }), 3000);
});

test('postgres: a database that does not exist is an IndexUnavailableError', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const missing = new URL(url);
  missing.pathname = '/larder_no_such_database';
  await assert.rejects(openPostgres(missing.href), (error) => error instanceof IndexUnavailableError && /does not exist/.test(error.message));
});

test('postgres: a server gone away is an IndexUnavailableError; the driver recovers when it is back', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const proxy = await proxied(t, url);
  const db = await open(t, viaProxy(url, proxy), { connectTimeoutMs: 1000 });
  await db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)');
  await db.run("INSERT INTO t (k) VALUES ('before')");

  await proxy.cut();
  // Pooled connections are gone, and new ones are refused.
  await unavailableWithin(db.run("INSERT INTO t (k) VALUES ('during')"), 3000);
  await unavailableWithin(db.all('SELECT k FROM t'), 3000);
  await unavailableWithin(
    db.transaction((tx) => tx.run("INSERT INTO t (k) VALUES ('during')")),
    3000,
  );

  await proxy.restore();
  await db.run("INSERT INTO t (k) VALUES ('after')");
  assert.deepEqual(await keys(db), ['after', 'before']);
});

test('postgres: a server that accepts connections but never answers fails within the connect timeout', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const proxy = await proxied(t, url);
  proxy.mode = 'blackhole';
  const took = await unavailableWithin(openPostgres(viaProxy(url, proxy), { connectTimeoutMs: 300 }), 3000);
  assert.ok(took >= 250, `gave up after ${Math.round(took)} ms, before the connect timeout`);
});

test('postgres: a server that goes silent mid-statement fails it soon after the statement timeout', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const proxy = await proxied(t, url);
  const db = await open(t, viaProxy(url, proxy), { statementTimeoutMs: 200, connectTimeoutMs: 500 });
  await db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)');
  proxy.mode = 'stall';
  // The server's cancellation cannot reach us: the client gives up after a short grace.
  await unavailableWithin(db.run("INSERT INTO t (k) VALUES ('lost')"), 5000);
  proxy.mode = 'forward';
  // The silent connection was dropped rather than pooled again.
  await db.run("INSERT INTO t (k) VALUES ('next')");
  assert.ok((await keys(db)).includes('next'));
});

test('postgres: a statement longer than the statement timeout is cancelled: IndexUnavailableError', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const db = await open(t, url, { statementTimeoutMs: 200 });
  await unavailableWithin(db.get('SELECT pg_sleep(5)'), 2000);
  assert.deepEqual(await db.get('SELECT 1 AS one'), { one: 1 });
});

test('postgres: connections the server terminates are replaced, idle or inside a transaction', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const db = await open(t, url);
  await db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)');
  const database = new URL(url).pathname.slice(1);
  const admin = await open(t, url);
  const terminateOthers = () =>
    admin.all('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()', [database]);

  // Idle pooled connections die: the process survives, and the next statement gets a new one.
  await db.run("INSERT INTO t (k) VALUES ('a')");
  await terminateOthers();
  await sleep(100);
  await db.run("INSERT INTO t (k) VALUES ('b')");

  // A transaction's connection dies between two statements.
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.run("INSERT INTO t (k) VALUES ('c')");
      await terminateOthers();
      await sleep(100);
      await tx.run("INSERT INTO t (k) VALUES ('d')");
    }),
    IndexUnavailableError,
  );
  // ...and during a statement.
  await assert.rejects(
    Promise.all([db.get('SELECT pg_sleep(3)'), sleep(300).then(terminateOthers)]),
    IndexUnavailableError,
  );
  assert.deepEqual(await keys(db), ['a', 'b']);
});

test('postgres: a row lock held past the lock timeout is an IndexUnavailableError; reads go on', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const holder = await open(t, url);
  const waiting = await open(t, url, { lockTimeoutMs: 100 });
  await holder.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT); INSERT INTO t (k, v) VALUES ('a', 1)");
  await holder.transaction(async (tx) => {
    await tx.run("UPDATE t SET v = 2 WHERE k = 'a'");
    await unavailableWithin(waiting.run("UPDATE t SET v = 3 WHERE k = 'a'"), 2000);
    assert.deepEqual(await waiting.get("SELECT v FROM t WHERE k = 'a'"), { v: 1 }, 'readers see the last commit');
  });
  await waiting.run("UPDATE t SET v = 3 WHERE k = 'a'");
  assert.deepEqual(await holder.get("SELECT v FROM t WHERE k = 'a'"), { v: 3 });
});

test('postgres: the pool is bounded: waiting for a connection longer than the connect timeout is IndexUnavailableError', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const db = await open(t, url, { maxConnections: 1, connectTimeoutMs: 200 });
  await db.transaction(async (tx) => {
    await tx.get('SELECT 1 AS one');
    await unavailableWithin(db.get('SELECT 2 AS two'), 2000);
  });
  assert.deepEqual(await db.get('SELECT 2 AS two'), { two: 2 });
});

test('postgres: withMigrationLock holds other pools off until it commits, even past their lock timeout', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const a = await open(t, url);
  const b = await open(t, url, { lockTimeoutMs: 50 });
  const order: string[] = [];
  let second: Promise<void> | undefined;
  await a.withMigrationLock(async (tx) => {
    order.push('a begins');
    second = b.withMigrationLock(async () => {
      order.push('b begins');
    });
    await sleep(300);
    await tx.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    order.push('a ends');
  });
  await second;
  assert.deepEqual(order, ['a begins', 'a ends', 'b begins']);
  // Ordinary statements keep their lock timeout after a migration run on the same pool.
  assert.deepEqual(await b.get("SELECT current_setting('lock_timeout') AS v"), { v: '50ms' });
});
