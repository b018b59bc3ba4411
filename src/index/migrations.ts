// The index schema as an append-only list of migrations, in SQL that SQLite and
// PostgreSQL both accept: TEXT, INTEGER, BIGINT for sizes and millisecond
// times, 0/1 for booleans, no AUTOINCREMENT (the caller gives every id).
// Never edit a released migration; add the next one.

import type { SqlDriver } from './sql-driver.ts';

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'caches, keys, tokens, nars, paths and their references',
    // `is_public` because PUBLIC is a keyword in SQL.
    sql: `
      CREATE TABLE caches (
        name TEXT PRIMARY KEY,
        is_public INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        compression TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
      CREATE TABLE keys (
        cache TEXT NOT NULL REFERENCES caches (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret_key TEXT NOT NULL,
        public_key TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (cache, name)
      );
      CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        cache TEXT REFERENCES caches (name) ON DELETE CASCADE,
        permission TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT
      );
      CREATE TABLE nars (
        cache TEXT NOT NULL REFERENCES caches (name) ON DELETE CASCADE,
        file_hash TEXT NOT NULL,
        url TEXT NOT NULL,
        compression TEXT NOT NULL,
        file_size BIGINT NOT NULL,
        nar_hash TEXT NOT NULL,
        nar_size BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (cache, file_hash)
      );
      CREATE TABLE paths (
        cache TEXT NOT NULL REFERENCES caches (name) ON DELETE CASCADE,
        hash_part TEXT NOT NULL,
        base TEXT NOT NULL,
        file_hash TEXT NOT NULL,
        nar_size BIGINT NOT NULL,
        narinfo TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (cache, hash_part)
      );
      CREATE TABLE refs (
        cache TEXT NOT NULL,
        hash_part TEXT NOT NULL,
        ref_hash_part TEXT NOT NULL,
        PRIMARY KEY (cache, hash_part, ref_hash_part),
        FOREIGN KEY (cache, hash_part) REFERENCES paths (cache, hash_part) ON DELETE CASCADE
      );
      -- "who refers to this path": garbage collection walks references backwards.
      CREATE INDEX refs_by_target ON refs (cache, ref_hash_part);
    `,
  },
  {
    version: 2,
    description: 'upstream caches, their cached presence answers, and caches.mirror',
    // Presence rows hang off their upstream, so removing an upstream (or replacing it
    // with other keys) drops the answers its old keys vouched for.
    sql: `
      ALTER TABLE caches ADD COLUMN mirror INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE upstreams (
        cache TEXT NOT NULL REFERENCES caches (name) ON DELETE CASCADE,
        url TEXT NOT NULL,
        public_keys TEXT NOT NULL,
        priority INTEGER NOT NULL,
        PRIMARY KEY (cache, url)
      );
      CREATE TABLE upstream_presence (
        cache TEXT NOT NULL,
        url TEXT NOT NULL,
        hash_part TEXT NOT NULL,
        present INTEGER NOT NULL,
        checked_at BIGINT NOT NULL,
        PRIMARY KEY (cache, url, hash_part),
        FOREIGN KEY (cache, url) REFERENCES upstreams (cache, url) ON DELETE CASCADE
      );
      -- Looked up by path across all of a cache's upstreams at once.
      CREATE INDEX upstream_presence_by_path ON upstream_presence (cache, hash_part);
    `,
  },
  {
    version: 3,
    description: 'leases: jobs that run on one replica at a time',
    // expires_at in milliseconds by the holder's clock: a lease's TTL must dwarf clock skew.
    sql: `
      CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 4,
    description: 'garbage collection: retention and quota per cache, pins, access times, NAR deletion claims',
    // retention_ms and max_size: NULL for none. generation: bumped whenever paths are deleted, so
    // that every replica drops the narinfos it cached for the cache. last_access: NULL until the
    // first recorded access (created_at counts as one). file_size: NULL when the NAR was not
    // recorded. deleting_at: set while garbage collection deletes the NAR's file; such a row
    // counts as absent.
    sql: `
      ALTER TABLE caches ADD COLUMN retention_ms BIGINT;
      ALTER TABLE caches ADD COLUMN max_size BIGINT;
      ALTER TABLE caches ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
      ALTER TABLE paths ADD COLUMN last_access BIGINT;
      -- The NAR file's size, copied from nars when the path is made: planning reads paths alone.
      ALTER TABLE paths ADD COLUMN file_size BIGINT;
      UPDATE paths SET file_size = (SELECT n.file_size FROM nars n WHERE n.cache = paths.cache AND n.file_hash = paths.file_hash);
      ALTER TABLE nars ADD COLUMN deleting_at BIGINT;
      -- "which paths use this NAR": access by NAR download, and whether a NAR is unreferenced.
      CREATE INDEX paths_by_file ON paths (cache, file_hash);
      CREATE TABLE pins (
        cache TEXT NOT NULL REFERENCES caches (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        hash_part TEXT NOT NULL,
        base TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (cache, name)
      );
      CREATE INDEX pins_by_path ON pins (cache, hash_part);
    `,
  },
  {
    version: 5,
    description: 'the upstream mirror: narinfos known upstream whose NAR is not fetched yet, and where a NAR came from',
    // mirrored_narinfos holds the narinfo larder serves for a path it has verified upstream but
    // not downloaded: any replica can then fetch the NAR when a client asks for it. The row goes
    // when the NAR is stored and the path published. nars.upstream: the upstream a NAR was
    // fetched from, NULL for uploads.
    sql: `
      ALTER TABLE nars ADD COLUMN upstream TEXT;
      CREATE TABLE mirrored_narinfos (
        cache TEXT NOT NULL REFERENCES caches (name) ON DELETE CASCADE,
        hash_part TEXT NOT NULL,
        file_name TEXT NOT NULL,
        upstream TEXT NOT NULL,
        nar_url TEXT NOT NULL,
        narinfo TEXT NOT NULL,
        fetched_at BIGINT NOT NULL,
        PRIMARY KEY (cache, hash_part)
      );
      CREATE INDEX mirrored_narinfos_by_file ON mirrored_narinfos (cache, file_name);
    `,
  },
  {
    version: 6,
    description: 'the dashboard: downloads per path, narinfo hits and misses and size samples per cache and day',
    // Counted in memory and added in batches (services/access-log.ts), never on a request. day: ms
    // at UTC midnight. paths, file_bytes, nar_bytes: the last size sample taken that day, NULL
    // when none was. paths_by_downloads and paths_by_created serve "most downloaded" and "recently
    // pushed" with a LIMIT; paths_by_name lets a search by name, and the sum of a cache's sizes,
    // read the index rather than every row with its narinfo (a tenth of the time), the search in
    // hash order for paging. refs_by_target gains the referrer's hash, so that a path's referrers
    // come in pages in hash order from the index (garbage collection's lookups by target use it
    // as before).
    sql: `
      ALTER TABLE paths ADD COLUMN downloads BIGINT NOT NULL DEFAULT 0;
      CREATE INDEX paths_by_downloads ON paths (cache, downloads);
      CREATE INDEX paths_by_created ON paths (cache, created_at);
      CREATE INDEX paths_by_name ON paths (cache, hash_part, base, nar_size, file_size);
      CREATE INDEX refs_by_target_source ON refs (cache, ref_hash_part, hash_part);
      DROP INDEX refs_by_target;
      CREATE TABLE cache_usage (
        cache TEXT NOT NULL REFERENCES caches (name) ON DELETE CASCADE,
        day BIGINT NOT NULL,
        narinfo_hits BIGINT NOT NULL DEFAULT 0,
        narinfo_misses BIGINT NOT NULL DEFAULT 0,
        nar_downloads BIGINT NOT NULL DEFAULT 0,
        paths BIGINT,
        file_bytes BIGINT,
        nar_bytes BIGINT,
        PRIMARY KEY (cache, day)
      );
    `,
  },
];

/** The database was migrated by a newer larder: this one must not touch it. */
export class SchemaTooNewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaTooNewError';
  }
}

export interface MigrationResult {
  /** The schema version the database is at now. */
  readonly version: number;
  /** The versions this run applied, oldest first; empty when the schema was up to date. */
  readonly applied: readonly number[];
}

/**
 * Brings the schema up to date in one transaction holding the driver's migration lock, so
 * that of several processes starting at once one applies the missing migrations and the
 * others then find them done. Each migration also claims its version row before it runs,
 * so that even a process that read the versions too early cannot apply one twice.
 */
export async function migrate(driver: SqlDriver, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationResult> {
  return driver.withMigrationLock(async (tx) => {
    await tx.exec(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at BIGINT NOT NULL
      )
    `);
    const rows = await tx.all<{ version: number }>('SELECT version FROM schema_migrations');
    const applied = new Set(rows.map((row) => row.version));
    const known = Math.max(0, ...migrations.map((m) => m.version));
    const newest = Math.max(0, ...applied);
    if (newest > known) {
      throw new SchemaTooNewError(
        `the index schema is at version ${newest}, newer than this larder knows (${known}); upgrade larder`,
      );
    }
    const missing = migrations.filter((m) => !applied.has(m.version)).sort((a, b) => a.version - b.version);
    const done: number[] = [];
    for (const migration of missing) {
      const claimed = await tx.run(
        'INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
        [migration.version, migration.description, Date.now()],
      );
      if (claimed.changes === 1) {
        await tx.exec(migration.sql);
        done.push(migration.version);
      }
    }
    return { version: Math.max(newest, ...missing.map((m) => m.version)), applied: done };
  });
}

/** The schema version of a migrated database; 0 before the first migration. */
export async function schemaVersion(driver: SqlDriver): Promise<number> {
  const row = await driver.get<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations');
  return row?.version ?? 0;
}
