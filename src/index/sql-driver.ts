// The narrow seam between the index's SQL and a database engine. The index's
// SQL is written once with `?` placeholders in the dialect both engines
// accept; a driver binds it, maps engine errors to IndexUnavailableError /
// IndexConflictError, and hands integers back as JS numbers. What differs
// between the engines beyond that (the migration lock) is a driver method, not
// a second copy of a statement.

/** What a query binds and returns: booleans are 0/1, times and sizes are integers. */
export type SqlValue = string | number | null;

export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgres';
  /** Rows as objects keyed by column name; the caller names their shape. */
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }>;
  /** Several statements, no parameters: schema migrations. */
  exec(sql: string): Promise<void>;
  /**
   * Runs `fn` in one write transaction, committed when it resolves and rolled back when it
   * throws. Statements must go through `tx`; called on `tx`, joins the open transaction.
   */
  transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in one write transaction that also holds the schema-migration lock, so that of
   * several processes migrating one database at once, one runs at a time and the others then
   * find the work done: an advisory lock on PostgreSQL, the write lock of BEGIN IMMEDIATE on
   * SQLite. Called on `tx`, takes the lock inside the open transaction.
   */
  withMigrationLock<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T>;
  /** Ends the connection(s); closing again does nothing. */
  close(): Promise<void>;
}

// String literals, quoted identifiers and comments pass through whole, so a `?`
// inside them is not taken for a placeholder.
const PLACEHOLDER_OR_SKIPPED = /'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\/\*[\s\S]*?\*\/|\?/g;

/** Rewrites `?` placeholders to PostgreSQL's `$1`, `$2`, … in order. */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(PLACEHOLDER_OR_SKIPPED, (match) => (match === '?' ? `$${++n}` : match));
}
