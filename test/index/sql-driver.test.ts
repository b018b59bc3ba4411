import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { IndexConflictError, IndexUnavailableError } from '../../src/index/cache-index.ts';
import { numberPlaceholders, type SqlDriver } from '../../src/index/sql-driver.ts';
import { openSqlite, type SqliteOptions } from '../../src/index/sqlite-driver.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'larder-driver-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function openTable(t: TestContext, options?: SqliteOptions): Promise<SqlDriver> {
  const db = openSqlite(join(tempDir(t), 'index.sqlite'), options);
  t.after(() => db.close());
  await db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)');
  return db;
}

async function keys(db: SqlDriver): Promise<string[]> {
  const rows = await db.all<{ k: string }>('SELECT k FROM t ORDER BY k');
  return rows.map((r) => r.k);
}

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

test('run reports changes; get and all bind ? parameters; integers come back as numbers', async (t) => {
  const db = await openTable(t);
  assert.deepEqual(await db.run('INSERT INTO t (k, v) VALUES (?, ?), (?, ?)', ['a', 2 ** 40, 'b', null]), { changes: 2 });
  assert.equal((await db.get<{ v: number }>('SELECT v FROM t WHERE k = ?', ['a']))?.v, 2 ** 40);
  assert.equal((await db.get<{ v: number | null }>('SELECT v FROM t WHERE k = ?', ['b']))?.v, null);
  assert.equal(await db.get('SELECT v FROM t WHERE k = ?', ['zz']), undefined);
  assert.deepEqual(await db.run('UPDATE t SET v = 1 WHERE k = ?', ['zz']), { changes: 0 });
});

test('a transaction commits what its function did', async (t) => {
  const db = await openTable(t);
  const result = await db.transaction(async (tx) => {
    await tx.run("INSERT INTO t (k) VALUES ('a')");
    await tx.run("INSERT INTO t (k) VALUES ('b')");
    return 'done';
  });
  assert.equal(result, 'done');
  assert.deepEqual(await keys(db), ['a', 'b']);
});

test('a transaction whose function throws is rolled back and the error passes through unchanged', async (t) => {
  const db = await openTable(t);
  const failure = new Error('boom');
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.run("INSERT INTO t (k) VALUES ('a')");
      throw failure;
    }),
    (error) => error === failure,
  );
  assert.deepEqual(await keys(db), []);
  // The connection is usable again: no transaction left open.
  await db.transaction((tx) => tx.run("INSERT INTO t (k) VALUES ('b')"));
  assert.deepEqual(await keys(db), ['b']);
});

test('a transaction inside a transaction joins it rather than nesting BEGIN', async (t) => {
  const db = await openTable(t);
  await db.transaction(async (tx) => {
    await tx.run("INSERT INTO t (k) VALUES ('outer')");
    await tx.transaction((inner) => inner.run("INSERT INTO t (k) VALUES ('inner')"));
  });
  assert.deepEqual(await keys(db), ['inner', 'outer']);

  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.run("INSERT INTO t (k) VALUES ('x')");
      await tx.transaction(async (inner) => {
        await inner.run("INSERT INTO t (k) VALUES ('y')");
        throw new Error('inner failure');
      });
    }),
    /inner failure/,
  );
  assert.deepEqual(await keys(db), ['inner', 'outer']);
});

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

test('a transaction handle is dead once its transaction ends', async (t) => {
  const db = await openTable(t);
  let leaked: SqlDriver | undefined;
  await db.transaction(async (tx) => {
    leaked = tx;
  });
  assert.ok(leaked);
  await assert.rejects(leaked.run("INSERT INTO t (k) VALUES ('late')"), /transaction already finished/);
  assert.deepEqual(await keys(db), []);
});

test('a unique violation is an IndexConflictError', async (t) => {
  const db = await openTable(t);
  await db.run("INSERT INTO t (k) VALUES ('a')");
  await assert.rejects(db.run("INSERT INTO t (k) VALUES ('a')"), IndexConflictError);
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
    // WAL: readers are not blocked by the writer, and see the last commit.
    assert.deepEqual(await keys(b), []);
  });
  await b.run("INSERT INTO t (k) VALUES ('b')");
  assert.deepEqual(await keys(a), ['a', 'b']);
});

test('a database that cannot be opened is an IndexUnavailableError; a bad statement is not', async (t) => {
  assert.throws(() => openSqlite(join(tempDir(t), 'no-such-dir', 'index.sqlite')), IndexUnavailableError);
  const db = await openTable(t);
  await assert.rejects(db.run('SELEC 1'), (error) => error instanceof Error && !(error instanceof IndexUnavailableError) && /syntax error/.test(error.message));
});
