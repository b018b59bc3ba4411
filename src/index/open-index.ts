// The configured index, whichever engine it is on: what the server and the
// CLI open. `index.type = "sqlite"` is one file (its directory created on first
// use); `"postgres"` is a database that many replicas share.

import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { IndexConfig } from '../config/config.ts';
import type { SqlDriver } from './sql-driver.ts';
import { migratedIndex, type SqlIndex } from './sql-index.ts';
import { openSqlite } from './sqlite-driver.ts';

/** A connection to the configured database, schema untouched: for `larder migrate` and tools. */
export async function openIndexDriver(config: IndexConfig): Promise<SqlDriver> {
  // Loaded only when configured: an embedded server need not carry the PostgreSQL client.
  if (config.type === 'postgres') return (await import('./postgres-driver.ts')).openPostgres(config.url);
  await mkdir(dirname(config.path), { recursive: true });
  return openSqlite(config.path);
}

/** Opens the configured index and brings its schema up to date. */
export async function openIndex(config: IndexConfig): Promise<SqlIndex> {
  return migratedIndex(await openIndexDriver(config));
}

/** Where the index is, for messages: a PostgreSQL URL without its password. */
export function describeIndex(config: IndexConfig): string {
  if (config.type === 'sqlite') return `SQLite index ${config.path}`;
  let where = config.url;
  try {
    const url = new URL(config.url);
    if (url.password) url.password = '***';
    url.search = '';
    where = url.href;
  } catch {
    where = 'at the configured URL';
  }
  return `PostgreSQL index ${where}`;
}
