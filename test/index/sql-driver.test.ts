import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { IndexUnavailableError } from '../../src/index/cache-index.ts';
import { numberPlaceholders, type SqlDriver } from '../../src/index/sql-driver.ts';
import { openSqlite, type SqliteOptions } from '../../src/index/sqlite-driver.ts';
import { defineDriverSuite, keys, type DriverBackend } from './driver-suite.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'larder-driver-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openDriver(t: TestContext, options?: SqliteOptions): SqlDriver {
  const db = openSqlite(join(tempDir(t), 'index.sqlite'), options);
  t.after(() => db.close());
  return db;
}

async function openTable(t: TestContext, options?: SqliteOptions): Promise<SqlDriver> {
  const db = openDriver(t, options);
  await db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)');
  return db;
}

const sqlite: DriverBackend = { name: 'sqlite', open: async (t) => openDriver(t) };

defineDriverSuite(sqlite);

test('numberPlaceholders numbers each ? in order', () => {
  assert.equal(numberPlaceholders('SELECT a FROM t WHERE b = ? AND c IN (?, ?)'), 'SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)');
  assert.equal(numberPlaceholders('SELECT 1'), 'SELECT 1');
});

test('numberPlaceholders leaves ? inside literals, quoted identifiers and comments alone', () => {
  assert.equal(numberPlaceholders(`SELECT '?', 'it''s ?', "col?" FROM t WHERE x = ?`), `SELECT '?', 'it''s ?', "col?" FROM t WHERE x = $1`);
  assert.equal(numberPlaceholders('SELECT ? -- why?\n, ? /* or ? */ , ?'), 'SELECT $1 -- why?\n, $2 /* or ? */ , $3');
});

async function pragma(db: SqlDriver, name: string): Promise<unknown> {
  const row = await db.get<Record<string, unknown>>(`PRAGMA ${name}`);
  return row && Object.values(row)[0];
}

test('the connection runs in WAL mode with foreign keys, synchronous NORMAL and a busy timeout', async (t) => {
  const db = await openTable(t);
  assert.equal(await pragma(db, 'journal_mode'), 'wal');
  assert.equal(await pragma(db, 'foreign_keys'), 1);
  assert.equal(await pragma(db, 'synchronous'), 1, 'NORMAL');
  assert.equal(await pragma(db, 'busy_timeout'), 5000);
  const quick = await openTable(t, { busyTimeoutMs: 25 });
  assert.equal(await pragma(quick, 'busy_timeout'), 25);
});

// One connection: what runs outside a transaction waits for it to end.
test('statements outside a transaction wait for it and are not rolled back with it', async (t) => {
  const db = await openTable(t);
  let outside: Promise<unknown> | undefined;
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.run("INSERT INTO t (k) VALUES ('inside')");
      outside = db.run("INSERT INTO t (k) VALUES ('outside')");
      // Let the outside statement run if it were not held back.
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(await keys(tx), ['inside']);
      throw new Error('roll back');
    }),
    /roll back/,
  );
  await outside;
  assert.deepEqual(await keys(db), ['outside']);
});

test('a statement issued just before a transaction begins is not swept into it', async (t) => {
  const db = await openTable(t);
  const outside = db.run("INSERT INTO t (k) VALUES ('outside')");
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.run("INSERT INTO t (k) VALUES ('inside')");
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error('roll back');
    }),
    /roll back/,
  );
  await outside;
  assert.deepEqual(await keys(db), ['outside']);
});

test('concurrent transactions on one driver run one after the other', async (t) => {
  const db = await openTable(t);
  const order: string[] = [];
  const first = db.transaction(async (tx) => {
    order.push('first begins');
    await new Promise((resolve) => setTimeout(resolve, 20));
    await tx.run("INSERT INTO t (k) VALUES ('first')");
    order.push('first ends');
  });
  const second = db.transaction(async (tx) => {
    order.push('second begins');
    await tx.run("INSERT INTO t (k) VALUES ('second')");
    order.push('second ends');
  });
  await Promise.all([first, second]);
  assert.deepEqual(order, ['first begins', 'first ends', 'second begins', 'second ends']);
  assert.deepEqual(await keys(db), ['first', 'second']);
});

test('a write lock held by another connection is an IndexUnavailableError once the busy timeout passes', async (t) => {
  const path = join(tempDir(t), 'shared.sqlite');
  const a = openSqlite(path);
  const b = openSqlite(path, { busyTimeoutMs: 20 });
  t.after(() => Promise.all([a.close(), b.close()]));
  await a.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');

  await a.transaction(async (tx) => {
    await tx.run("INSERT INTO t (k) VALUES ('a')");
    await assert.rejects(b.run("INSERT INTO t (k) VALUES ('b')"), IndexUnavailableError);
    await assert.rejects(b.transaction(async () => {}), IndexUnavailableError);
    await assert.rejects(b.withMigrationLock(async () => {}), IndexUnavailableError, 'the migration lock is the write lock');
    // WAL: readers are not blocked by the writer, and see the last commit.
    assert.deepEqual(await keys(b), []);
  });
  await b.run("INSERT INTO t (k) VALUES ('b')");
  assert.deepEqual(await keys(a), ['a', 'b']);
});

test('a database that cannot be opened is an IndexUnavailableError', async (t) => {
  assert.throws(() => openSqlite(join(tempDir(t), 'no-such-dir', 'index.sqlite')), IndexUnavailableError);
});
