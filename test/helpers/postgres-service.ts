// A real PostgreSQL for tests: each test gets a database of its own, created
// empty and dropped afterwards. The server is LARDER_TEST_POSTGRES_URL when set
// (a superuser's URL; any database in it), else the throwaway one that
// scripts/services/postgres-start.sh runs on 127.0.0.1:54329, started here when
// it does not answer. The script holds a lock while it starts the server, so
// test files running at once start it once.
//
// Without a server the test is skipped with the reason; with
// LARDER_REQUIRE_SERVICES=1 (CI) it fails instead.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { servicesRequired } from './nix-env.ts';

const START_SCRIPT = fileURLToPath(new URL('../../scripts/services/postgres-start.sh', import.meta.url));
const DEFAULT_PORT = process.env.LARDER_POSTGRES_PORT || '54329';
const DEFAULT_URL = `postgres://postgres@127.0.0.1:${DEFAULT_PORT}/postgres`;

type Server = { readonly url: string } | { readonly unavailable: string };

let server: Promise<Server> | undefined;

/** Runs statements on the server's maintenance connection; rejects when it does not answer. */
async function admin(url: string, ...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  try {
    await client.connect();
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end().catch(() => {});
  }
}

async function problemWith(url: string): Promise<string | undefined> {
  try {
    await admin(url, 'SELECT 1');
    return undefined;
  } catch (error) {
    return (error as Error).message || String(error);
  }
}

function runStartScript(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [START_SCRIPT], { timeout: 15 * 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(stderr.trim().split('\n').slice(-5).join('\n') || error.message));
      else resolve(stdout.trim().split('\n').pop() ?? '');
    });
  });
}

async function findServer(): Promise<Server> {
  const configured = process.env.LARDER_TEST_POSTGRES_URL;
  if (configured) {
    const problem = await problemWith(configured);
    return problem ? { unavailable: `LARDER_TEST_POSTGRES_URL does not answer (${problem})` } : { url: configured };
  }
  if ((await problemWith(DEFAULT_URL)) === undefined) return { url: DEFAULT_URL };
  let url: string;
  try {
    url = await runStartScript();
  } catch (error) {
    return { unavailable: `PostgreSQL could not be started by scripts/services/postgres-start.sh: ${(error as Error).message}` };
  }
  const problem = await problemWith(url);
  return problem ? { unavailable: `PostgreSQL started but does not answer at ${url} (${problem})` } : { url };
}

/** The server's superuser URL, or undefined after skipping the test (failing it under LARDER_REQUIRE_SERVICES=1). */
export async function postgresServer(t: TestContext): Promise<string | undefined> {
  server ??= findServer();
  const found = await server;
  if ('url' in found) return found.url;
  if (servicesRequired) throw new Error(`${found.unavailable}, but LARDER_REQUIRE_SERVICES=1`);
  t.skip(`no PostgreSQL: ${found.unavailable}`);
  return undefined;
}

/** The URL of `database` on the server at `serverUrl`. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.href;
}

/**
 * The URL of a new, empty database for this test, dropped when it ends (connections still open
 * to it are closed by the server); undefined after skipping the test.
 */
export async function postgresService(t: TestContext): Promise<string | undefined> {
  const serverUrl = await postgresServer(t);
  if (serverUrl === undefined) return undefined;
  const name = `larder_test_${randomBytes(6).toString('hex')}`;
  // template0: nobody is ever connected to it, so databases can be created from it at once.
  await admin(serverUrl, `CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`);
  t.after(() => admin(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  return databaseUrl(serverUrl, name);
}
