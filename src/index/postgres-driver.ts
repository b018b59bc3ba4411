// SqlDriver over PostgreSQL (node-postgres, pure JavaScript). Many replicas
// share one database, so every wait is bounded: connecting (or waiting for a
// pooled connection), each statement (cancelled by the server, and abandoned
// by the client a little later should the server not answer at all), and row
// locks. A database that is down, restarting or silent fails a call within
// seconds with IndexUnavailableError, and the pool reconnects on the next one.

import pg from 'pg';
import type { PoolClient, QueryResult } from 'pg';
import { IndexConflictError, IndexUnavailableError } from './cache-index.ts';
import { numberPlaceholders, type SqlDriver, type SqlValue } from './sql-driver.ts';

export interface PostgresOptions {
  /** Connections in the pool; default 10. */
  readonly maxConnections?: number;
  /** Connecting, or waiting for a free pooled connection; default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /** Longest statement (server-side `statement_timeout`); default 10000 ms. */
  readonly statementTimeoutMs?: number;
  /** How long a statement waits for a row lock (`lock_timeout`), like SQLite's busy timeout; default 5000 ms. */
  readonly lockTimeoutMs?: number;
  /** Longest schema migration run, waiting for another process's run included; default 600000 ms. */
  readonly migrationTimeoutMs?: number;
}

const DEFAULTS = {
  maxConnections: 10,
  connectTimeoutMs: 5000,
  statementTimeoutMs: 10_000,
  lockTimeoutMs: 5000,
  migrationTimeoutMs: 600_000,
} satisfies Required<PostgresOptions>;

/** How much longer than the server's statement timeout the client waits for any answer. */
const CLIENT_GRACE_MS = 2000;
/** A session stuck in an open transaction (its process hung) gives its locks up after this. */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;
/** pg_advisory_xact_lock(classid, objid): 'lard' in ASCII, then 1 for schema migrations. */
const MIGRATION_LOCK = '1818325604, 1';
/** ON CONFLICT, which the index's SQL relies on, came with PostgreSQL 9.5. */
const MIN_SERVER_VERSION = 90500;
/** Enough for every fixed statement; the bound matters only for IN lists of varying length. */
const NUMBERED_CACHE_SIZE = 500;

const INT8_OID = 20;

/** BIGINT arrives as text; sizes and millisecond times fit JavaScript numbers exactly. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`BIGINT ${text} is outside JavaScript's safe integer range`);
  return value;
}

// Per pool, so that other users of pg in this process keep its defaults.
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

// SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html)
// that mean "not now" rather than "wrong": connection exceptions, transaction
// rollbacks (serialization failure, deadlock), insufficient resources (disk full,
// too many connections), operator intervention (statement timeout, shutdown,
// restart), system errors.
const UNAVAILABLE_CLASSES = new Set(['08', '40', '53', '57', '58']);
const UNAVAILABLE_STATES = new Set([
  '25P03', // idle_in_transaction_session_timeout
  '55P03', // lock_not_available: lock_timeout
  '28000', // invalid_authorization_specification
  '28P01', // invalid_password
  '3D000', // invalid_catalog_name: the database does not exist (yet)
]);
const UNIQUE_VIOLATION = '23505';
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);
// node-postgres's own connection failures carry no code, only these messages.
const CONNECTION_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed|Connection closed)/;

function isDatabaseError(error: unknown): error is pg.DatabaseError {
  return error instanceof pg.DatabaseError;
}

function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  if (error instanceof AggregateError && error.errors.some(isConnectionFailure)) return true;
  return CONNECTION_MESSAGES.test(error.message);
}

function isUnavailable(error: unknown): boolean {
  if (isDatabaseError(error)) {
    const code = error.code ?? '';
    return UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || UNAVAILABLE_STATES.has(code);
  }
  return isConnectionFailure(error);
}

/** The index's error for a PostgreSQL or connection error, or the error itself when it is a bug, not a state. */
export function mapPostgresError(error: unknown): unknown {
  if (error instanceof IndexUnavailableError || error instanceof IndexConflictError) return error;
  if (isDatabaseError(error) && error.code === UNIQUE_VIOLATION) {
    return new IndexConflictError(`already exists (${error.detail ?? error.message})`);
  }
  if (isUnavailable(error)) {
    const message = error instanceof Error ? error.message || (error as NodeJS.ErrnoException).code : String(error);
    return new IndexUnavailableError(`PostgreSQL index unavailable: ${message}`, { cause: error });
  }
  return error;
}

/** After these the connection cannot be trusted with another statement: it is dropped, not pooled. */
function breaksConnection(error: unknown): boolean {
  if (!isDatabaseError(error)) return true; // network, client timeout, or a reply we failed to read
  return error.severity === 'FATAL' || error.severity === 'PANIC' || (error.code ?? '').startsWith('08');
}

const numbered = new Map<string, string>();

/** `?` placeholders as `$n`, remembered for the statements used most recently. */
function postgresText(sql: string): string {
  let text = numbered.get(sql);
  if (text === undefined) {
    text = numberPlaceholders(sql);
    if (numbered.size >= NUMBERED_CACHE_SIZE) {
      const oldest = numbered.keys().next().value;
      if (oldest !== undefined) numbered.delete(oldest);
    }
  } else {
    numbered.delete(sql);
  }
  numbered.set(sql, text);
  return text;
}

/** One pooled connection, checked out; remembers a failure that makes it unfit to return to the pool. */
class Checkout {
  readonly #client: PoolClient;
  #failure: unknown;
  readonly #onError = (error: unknown): void => {
    // The server closed the connection between statements: the next one fails with this.
    this.#failure ??= error;
  };

  constructor(client: PoolClient) {
    this.#client = client;
    client.on('error', this.#onError);
  }

  async query(sql: string, params: readonly SqlValue[] | undefined, queryTimeoutMs: number): Promise<QueryResult> {
    if (this.#failure !== undefined) throw mapPostgresError(this.#failure);
    try {
      const config = { text: params === undefined ? sql : postgresText(sql), values: params, query_timeout: queryTimeoutMs };
      return await this.#client.query(config as pg.QueryConfig);
    } catch (error) {
      if (breaksConnection(error)) this.#failure ??= error;
      throw mapPostgresError(error);
    }
  }

  /** Rolls back; a connection that cannot is not pooled again. The caller's error is what matters. */
  async rollback(queryTimeoutMs: number): Promise<void> {
    if (this.#failure !== undefined) return;
    try {
      await this.query('ROLLBACK', undefined, queryTimeoutMs);
    } catch (error) {
      this.#failure ??= error;
    }
  }

  release(): void {
    this.#client.off('error', this.#onError);
    this.#client.release(this.#failure === undefined ? undefined : true);
  }
}

interface Settings {
  readonly queryTimeoutMs: number;
  readonly migrationTimeoutMs: number;
}

/** The handle a transaction's function works through; dead once the transaction ends. */
class PostgresTransaction implements SqlDriver {
  readonly dialect = 'postgres';
  readonly #checkout: Checkout;
  readonly #queryTimeoutMs: number;
  #open = true;

  constructor(checkout: Checkout, queryTimeoutMs: number) {
    this.#checkout = checkout;
    this.#queryTimeoutMs = queryTimeoutMs;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return (await this.#query(sql, params)).rows as T[];
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await this.#query(sql, params)).rows[0] as T | undefined;
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<{ changes: number }> {
    return { changes: (await this.#query(sql, params)).rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    this.#live();
    await this.#checkout.query(sql, undefined, this.#queryTimeoutMs);
  }

  /** An inner transaction is part of the outer one. */
  async transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    this.#live();
    return fn(this);
  }

  async withMigrationLock<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    await this.exec(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    return fn(this);
  }

  async close(): Promise<void> {
    throw new Error('close the driver, not a transaction');
  }

  finish(): void {
    this.#open = false;
  }

  #query(sql: string, params: readonly SqlValue[]): Promise<QueryResult> {
    this.#live();
    return this.#checkout.query(sql, params, this.#queryTimeoutMs);
  }

  #live(): void {
    if (!this.#open) throw new Error('transaction already finished');
  }
}

class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres';
  readonly #pool: pg.Pool;
  readonly #settings: Settings;
  #closed: Promise<void> | undefined;

  constructor(pool: pg.Pool, settings: Settings) {
    this.#pool = pool;
    this.#settings = settings;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return (await this.#query(sql, params)).rows as T[];
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await this.#query(sql, params)).rows[0] as T | undefined;
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<{ changes: number }> {
    return { changes: (await this.#query(sql, params)).rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.#query(sql, undefined);
  }

  transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    return this.#transaction(fn, this.#settings.queryTimeoutMs);
  }

  /**
   * One transaction holding a transaction-level advisory lock: of several replicas migrating at
   * once, the others wait (up to the migration timeout, not the lock timeout) and then find the
   * work done. Schema changes are transactional in PostgreSQL, so a failed run leaves nothing.
   */
  withMigrationLock<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
    const { migrationTimeoutMs } = this.#settings;
    return this.#transaction(async (tx) => {
      await tx.exec(`SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = ${Math.trunc(migrationTimeoutMs)}`);
      return tx.withMigrationLock(fn);
    }, migrationTimeoutMs + CLIENT_GRACE_MS);
  }

  close(): Promise<void> {
    this.#closed ??= this.#pool.end();
    return this.#closed;
  }

  /** Checks that the server answers and is recent enough. */
  async check(): Promise<void> {
    const row = await this.get<{ server_version_num: string }>('SHOW server_version_num');
    const version = Number(row?.server_version_num);
    if (!(version >= MIN_SERVER_VERSION)) {
      throw new Error(`PostgreSQL ${row?.server_version_num ?? '?'} is too old for the index: 9.5 or later is needed`);
    }
  }

  async #checkout(): Promise<Checkout> {
    try {
      return new Checkout(await this.#pool.connect());
    } catch (error) {
      throw mapPostgresError(error);
    }
  }

  async #query(sql: string, params: readonly SqlValue[] | undefined): Promise<QueryResult> {
    const checkout = await this.#checkout();
    try {
      return await checkout.query(sql, params, this.#settings.queryTimeoutMs);
    } finally {
      checkout.release();
    }
  }

  async #transaction<T>(fn: (tx: SqlDriver) => Promise<T>, queryTimeoutMs: number): Promise<T> {
    const checkout = await this.#checkout();
    const tx = new PostgresTransaction(checkout, queryTimeoutMs);
    try {
      await checkout.query('BEGIN', undefined, queryTimeoutMs);
      try {
        const result = await fn(tx);
        await checkout.query('COMMIT', undefined, queryTimeoutMs);
        return result;
      } catch (error) {
        await checkout.rollback(queryTimeoutMs);
        throw error;
      }
    } finally {
      tx.finish();
      checkout.release();
    }
  }
}

/**
 * Opens a pool on the database at `url` (`postgres://user:password@host:port/database`, libpq's
 * URL parameters such as `sslmode` included) and checks that it answers.
 */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<SqlDriver> {
  const o = { ...DEFAULTS, ...options };
  const pool = new pg.Pool({
    connectionString: url,
    max: o.maxConnections,
    connectionTimeoutMillis: o.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    statement_timeout: o.statementTimeoutMs,
    lock_timeout: o.lockTimeoutMs,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    application_name: 'larder',
    types: TYPES,
  });
  // An idle pooled connection that the server closes (restart, admin kill) is
  // dropped from the pool; without a listener its error would end the process.
  pool.on('error', () => {});
  const driver = new PostgresDriver(pool, {
    queryTimeoutMs: o.statementTimeoutMs + CLIENT_GRACE_MS,
    migrationTimeoutMs: o.migrationTimeoutMs,
  });
  try {
    await driver.check();
  } catch (error) {
    await driver.close();
    throw error;
  }
  return driver;
}
