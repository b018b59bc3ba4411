// SqlDriver over node:sqlite. Several larder processes may share one database
// file, so it runs in WAL mode (readers never wait for the writer) with a busy
// timeout (writers queue for the write lock instead of failing at once).
// DatabaseSync is synchronous: a busy wait blocks this process's event loop for
// at most the busy timeout, after which the caller gets IndexUnavailableError.

import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { IndexConflictError, IndexUnavailableError } from './cache-index.ts';
import type { SqlDriver, SqlValue } from './sql-driver.ts';

export interface SqliteOptions {
  /** How long a writer waits for another connection's write lock; default 5000 ms. */
  readonly busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** Enough for every fixed query; the bound matters only for IN lists of varying length. */
const STATEMENT_CACHE_SIZE = 200;

// Primary result codes (https://sqlite.org/rescode.html); node:sqlite reports
// extended codes, whose low byte is the primary one.
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
/** WAL lock races that outlasted SQLite's own retries. */
const SQLITE_PROTOCOL = 15;
const UNAVAILABLE_CODES = new Set([SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL]);
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;
const SQLITE_CONSTRAINT_UNIQUE = 2067;

function sqliteErrorCode(error: unknown): number | undefined {
  if (error instanceof Error && 'errcode' in error && typeof error.errcode === 'number') return error.errcode;
  return undefined;
}

/** The index's error for a node:sqlite error, or the error itself when it is a bug, not a state. */
function mapSqliteError(error: unknown): unknown {
  const code = sqliteErrorCode(error);
  if (code === undefined || !(error instanceof Error)) return error;
  if (code === SQLITE_CONSTRAINT_PRIMARYKEY || code === SQLITE_CONSTRAINT_UNIQUE) {
    return new IndexConflictError(`already exists (${error.message})`);
  }
  if (UNAVAILABLE_CODES.has(code & 0xff)) {
    return new IndexUnavailableError(`SQLite index unavailable: ${error.message}`, { cause: error });
  }
  return error;
}

function mapped<T>(operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    throw mapSqliteError(error);
  }
}

/** One database connection: synchronous statements, and a lock held by the open transaction. */
class SqliteConnection {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #transactionDone: Promise<void> | undefined;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  all<T>(sql: string, params: readonly SqlValue[]): T[] {
    return mapped(() => this.#statement(sql).all(...params)) as T[];
  }

  get<T>(sql: string, params: readonly SqlValue[]): T | undefined {
    return mapped(() => this.#statement(sql).get(...params)) as T | undefined;
  }

  run(sql: string, params: readonly SqlValue[]): { changes: number } {
    const { changes } = mapped(() => this.#statement(sql).run(...params));
    return { changes: Number(changes) };
  }

  exec(sql: string): void {
    mapped(() => this.#db.exec(sql));
  }

  /**
   * Runs `operation` once no transaction holds the connection. The check and the operation
   * share one tick, so a transaction cannot begin in between and sweep the operation into it.
   */
  async whenFree<T>(operation: () => T): Promise<T> {
    while (this.#transactionDone) await this.#transactionDone;
    return operation();
  }

  async transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    while (this.#transactionDone) await this.#transactionDone;
    let release!: () => void;
    this.#transactionDone = new Promise((resolve) => (release = resolve));
    const tx = new SqliteTransaction(this);
    try {
      this.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(tx);
        this.exec('COMMIT');
        return result;
      } catch (error) {
        this.#rollback();
        throw error;
      }
    } finally {
      tx.finish();
      this.#transactionDone = undefined;
      release();
    }
  }

  close(): void {
    if (this.#db.isOpen) mapped(() => this.#db.close());
  }

  // SQLite rolls back by itself after some errors (SQLITE_FULL, IOERR); a failed
  // ROLLBACK must not hide the error that caused it.
  #rollback(): void {
    if (!this.#db.isTransaction) return;
    try {
      this.#db.exec('ROLLBACK');
    } catch {
      // the caller's error is rethrown
    }
  }

  // Least recently used statements are dropped first.
  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement) {
      this.#statements.delete(sql);
    } else {
      statement = this.#db.prepare(sql);
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.#statements.keys().next().value;
        if (oldest !== undefined) this.#statements.delete(oldest);
      }
    }
    this.#statements.set(sql, statement);
    return statement;
  }
}

/** The handle a transaction's function works through; dead once the transaction ends. */
class SqliteTransaction implements SqlDriver {
  readonly dialect = 'sqlite';
  readonly #connection: SqliteConnection;
  #open = true;

  constructor(connection: SqliteConnection) {
    this.#connection = connection;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.#live().all<T>(sql, params);
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return this.#live().get<T>(sql, params);
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<{ changes: number }> {
    return this.#live().run(sql, params);
  }

  async exec(sql: string): Promise<void> {
    this.#live().exec(sql);
  }

  /** SQLite cannot nest BEGIN: an inner transaction is part of the outer one. */
  async transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    this.#live();
    return fn(this);
  }

  /** The open BEGIN IMMEDIATE transaction already excludes every other writer. */
  async withMigrationLock<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    this.#live();
    return fn(this);
  }

  async close(): Promise<void> {
    throw new Error('close the driver, not a transaction');
  }

  finish(): void {
    this.#open = false;
  }

  #live(): SqliteConnection {
    if (!this.#open) throw new Error('transaction already finished');
    return this.#connection;
  }
}

class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite';
  readonly #connection: SqliteConnection;

  constructor(connection: SqliteConnection) {
    this.#connection = connection;
  }

  all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.#connection.whenFree(() => this.#connection.all<T>(sql, params));
  }

  get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return this.#connection.whenFree(() => this.#connection.get<T>(sql, params));
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<{ changes: number }> {
    return this.#connection.whenFree(() => this.#connection.run(sql, params));
  }

  exec(sql: string): Promise<void> {
    return this.#connection.whenFree(() => this.#connection.exec(sql));
  }

  transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    return this.#connection.transaction(fn);
  }

  /** BEGIN IMMEDIATE holds the database's one write lock: other processes' runs wait for it. */
  withMigrationLock<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    return this.#connection.transaction(fn);
  }

  close(): Promise<void> {
    return this.#connection.whenFree(() => this.#connection.close());
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// Switching a fresh file to WAL takes an exclusive lock without consulting the
// busy handler, so processes starting together would fail at once: retry until
// the busy timeout, blocking as SQLite's own busy wait does.
function enableWal(db: DatabaseSync, busyTimeoutMs: number): void {
  const deadline = Date.now() + busyTimeoutMs;
  for (;;) {
    try {
      db.exec('PRAGMA journal_mode = WAL');
      return;
    } catch (error) {
      const code = sqliteErrorCode(error);
      if (code === undefined || (code & 0xff) !== SQLITE_BUSY || Date.now() >= deadline) throw mapSqliteError(error);
      sleepSync(10);
    }
  }
}

/** Opens (creating if need be) the SQLite database file at `path`. */
export function openSqlite(path: string, options: SqliteOptions = {}): SqlDriver {
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const db = mapped(() => new DatabaseSync(path, { timeout: busyTimeoutMs }));
  try {
    enableWal(db, busyTimeoutMs);
    // NORMAL is durable across application crashes in WAL mode; only a power
    // loss may drop the last commits, never corrupt the file.
    mapped(() => db.exec('PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;'));
  } catch (error) {
    db.close();
    throw error;
  }
  return new SqliteDriver(new SqliteConnection(db));
}
