// What every SqlDriver must do, whatever the engine: binding, integers as
// numbers, transactions (commit, rollback, joining, dead handles) and error
// mapping. Each engine's test file runs it with its own way to open a driver.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { IndexConflictError, IndexUnavailableError } from '../../src/index/cache-index.ts';
import type { SqlDriver } from '../../src/index/sql-driver.ts';

export interface DriverBackend {
  readonly name: 'sqlite' | 'postgres';
  /** A driver on a new, empty database, closed when the test ends; undefined after skipping the test. */
  open(t: TestContext): Promise<SqlDriver | undefined>;
}

/** A driver on a new database with table `t (k TEXT PRIMARY KEY, v BIGINT)`; undefined when skipped. */
export async function openTable(backend: DriverBackend, t: TestContext): Promise<SqlDriver | undefined> {
  const db = await backend.open(t);
  await db?.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)');
  return db;
}

export async function keys(db: SqlDriver): Promise<string[]> {
  const rows = await db.all<{ k: string }>('SELECT k FROM t');
  // Sorted here: ORDER BY would follow the database's collation.
  return rows.map((r) => r.k).sort();
}

export function defineDriverSuite(backend: DriverBackend): void {
  const driverTest = (name: string, fn: (t: TestContext, db: SqlDriver) => Promise<void>): void => {
    test(`${backend.name}: ${name}`, async (t) => {
      const db = await openTable(backend, t);
      if (db) await fn(t, db);
    });
  };

  driverTest('the driver names its dialect', async (_t, db) => {
    assert.equal(db.dialect, backend.name);
  });

  driverTest('run reports changes; get and all bind ? parameters; integers come back as numbers', async (_t, db) => {
    assert.deepEqual(await db.run('INSERT INTO t (k, v) VALUES (?, ?), (?, ?)', ['a', 2 ** 40, 'b', null]), { changes: 2 });
    assert.equal((await db.get<{ v: number }>('SELECT v FROM t WHERE k = ?', ['a']))?.v, 2 ** 40);
    assert.equal((await db.get<{ v: number | null }>('SELECT v FROM t WHERE k = ?', ['b']))?.v, null);
    assert.equal(await db.get('SELECT v FROM t WHERE k = ?', ['zz']), undefined);
    assert.deepEqual(await db.run('UPDATE t SET v = 1 WHERE k = ?', ['zz']), { changes: 0 });
    // Spread: node:sqlite's rows have no prototype.
    const rows = await db.all<object>('SELECT k, v FROM t WHERE k IN (?, ?)', ['a', 'zz']);
    assert.deepEqual(rows.map((row) => ({ ...row })), [{ k: 'a', v: 2 ** 40 }]);
    assert.deepEqual({ ...(await db.get<object>('SELECT count(*) AS n FROM t')) }, { n: 2 });
  });

  driverTest('BIGINT values round-trip exactly up to 2^53 - 1, negative ones too', async (_t, db) => {
    const values = [2 ** 31, 2 ** 31 + 1, 2 ** 32 + 7, 1_700_000_000_000, Number.MAX_SAFE_INTEGER, -(2 ** 40) - 3];
    for (const [i, v] of values.entries()) await db.run('INSERT INTO t (k, v) VALUES (?, ?)', [`k${i}`, v]);
    const rows = await db.all<{ k: string; v: number }>('SELECT k, v FROM t');
    assert.deepEqual(
      rows.sort((a, b) => Number(a.k.slice(1)) - Number(b.k.slice(1))).map((r) => r.v),
      values,
    );
    assert.ok(rows.every((r) => typeof r.v === 'number'));
    assert.equal((await db.get<{ v: number }>('SELECT v FROM t WHERE v > ?', [2 ** 52]))?.v, Number.MAX_SAFE_INTEGER);
  });

  driverTest('a ? inside a string literal is not a placeholder', async (_t, db) => {
    await db.run("INSERT INTO t (k, v) VALUES ('what?', ?)", [1]);
    assert.deepEqual(await keys(db), ['what?']);
  });

  driverTest('exec runs several statements', async (_t, db) => {
    await db.exec("INSERT INTO t (k) VALUES ('a'); INSERT INTO t (k) VALUES ('b');");
    assert.deepEqual(await keys(db), ['a', 'b']);
  });

  driverTest('a transaction commits what its function did', async (_t, db) => {
    const result = await db.transaction(async (tx) => {
      await tx.run("INSERT INTO t (k) VALUES ('a')");
      await tx.run("INSERT INTO t (k) VALUES ('b')");
      return 'done';
    });
    assert.equal(result, 'done');
    assert.deepEqual(await keys(db), ['a', 'b']);
  });

  driverTest('a transaction whose function throws is rolled back and the error passes through unchanged', async (_t, db) => {
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

  driverTest('a transaction whose statement fails is rolled back with the mapped error', async (_t, db) => {
    await db.run("INSERT INTO t (k) VALUES ('a')");
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.run("INSERT INTO t (k) VALUES ('b')");
        await tx.run("INSERT INTO t (k) VALUES ('a')");
      }),
      IndexConflictError,
    );
    assert.deepEqual(await keys(db), ['a']);
    await db.transaction((tx) => tx.run("INSERT INTO t (k) VALUES ('c')"));
    assert.deepEqual(await keys(db), ['a', 'c']);
  });

  driverTest('a transaction inside a transaction joins it rather than nesting BEGIN', async (_t, db) => {
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

  driverTest('a transaction does not see into, nor take along, statements made outside it', async (_t, db) => {
    let outside: Promise<unknown> | undefined;
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.run("INSERT INTO t (k) VALUES ('inside')");
        outside = db.run("INSERT INTO t (k) VALUES ('outside')");
        throw new Error('roll back');
      }),
      /roll back/,
    );
    await outside;
    assert.deepEqual(await keys(db), ['outside']);
  });

  driverTest('a transaction handle is dead once its transaction ends', async (_t, db) => {
    let leaked: SqlDriver | undefined;
    await db.transaction(async (tx) => {
      leaked = tx;
    });
    assert.ok(leaked);
    await assert.rejects(leaked.run("INSERT INTO t (k) VALUES ('late')"), /transaction already finished/);
    await assert.rejects(leaked.close(), /close the driver/);
    assert.deepEqual(await keys(db), []);
  });

  driverTest('withMigrationLock runs its function in a transaction', async (_t, db) => {
    assert.equal(
      await db.withMigrationLock(async (tx) => {
        await tx.run("INSERT INTO t (k) VALUES ('a')");
        return tx.withMigrationLock(async (inner) => (await inner.run("INSERT INTO t (k) VALUES ('b')")).changes);
      }),
      1,
    );
    await assert.rejects(
      db.withMigrationLock(async (tx) => {
        await tx.run("INSERT INTO t (k) VALUES ('c')");
        throw new Error('roll back');
      }),
      /roll back/,
    );
    assert.deepEqual(await keys(db), ['a', 'b']);
  });

  driverTest('a unique violation is an IndexConflictError', async (_t, db) => {
    await db.run("INSERT INTO t (k) VALUES ('a')");
    await assert.rejects(db.run("INSERT INTO t (k) VALUES ('a')"), IndexConflictError);
    await assert.rejects(db.run('INSERT INTO t (k) VALUES (?)', ['a']), IndexConflictError);
  });

  driverTest('a bad statement is an error of its own, not IndexUnavailableError', async (_t, db) => {
    await assert.rejects(
      db.run('SELEC 1'),
      (error) => error instanceof Error && !(error instanceof IndexUnavailableError) && /syntax error/.test(error.message),
    );
    await assert.rejects(db.run('SELECT nope FROM t'), (error) => error instanceof Error && !(error instanceof IndexUnavailableError));
    assert.deepEqual(await keys(db), [], 'the driver still works');
  });

  driverTest('closing twice is harmless', async (_t, db) => {
    await db.close();
    await db.close();
  });
}
