// CacheIndex in SQL, over any SqlDriver: the same statements run on node:sqlite
// and PostgreSQL. Rows and records meet only in the `...FromRow` functions.

import {
  IndexConflictError,
  type CacheIndex,
  type CacheRecord,
  type KeyRecord,
  type KeyState,
  type NarRecord,
  type PathRecord,
  type Permission,
  type PresenceAnswer,
  type TokenRecord,
  type Upstream,
  type UpstreamPresence,
  type UpstreamRecord,
} from './cache-index.ts';
import { migrate, schemaVersion } from './migrations.ts';
import { openPostgres, type PostgresOptions } from './postgres-driver.ts';
import type { SqlDriver, SqlValue } from './sql-driver.ts';
import { openSqlite, type SqliteOptions } from './sqlite-driver.ts';

/** Hash parts per `IN (…)` list: well under SQLite's and PostgreSQL's bound-parameter limits. */
const IN_LIST_CHUNK = 500;
/** refs rows per multi-row INSERT (three parameters each). */
const REFS_INSERT_CHUNK = 300;
/** upstream_presence rows per multi-row INSERT (five parameters each). */
const PRESENCE_INSERT_CHUNK = 180;

interface CacheRow {
  name: string;
  is_public: number;
  priority: number;
  compression: string;
  mirror: number;
  created_at: number;
}

interface UpstreamRow {
  cache: string;
  url: string;
  /** Space-separated Nix public keys. */
  public_keys: string;
  priority: number;
}

interface PresenceRow {
  url: string;
  hash_part: string;
  present: number;
  checked_at: number;
}

interface KeyRow {
  cache: string;
  name: string;
  secret_key: string;
  public_key: string;
  state: string;
  created_at: number;
}

interface TokenRow {
  id: string;
  hash: string;
  label: string;
  cache: string | null;
  permission: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

interface NarRow {
  cache: string;
  file_hash: string;
  url: string;
  compression: string;
  file_size: number;
  nar_hash: string;
  nar_size: number;
  created_at: number;
}

interface PathRow {
  cache: string;
  hash_part: string;
  base: string;
  file_hash: string;
  nar_size: number;
  narinfo: string;
  created_at: number;
}

const CACHE_COLUMNS = 'name, is_public, priority, compression, mirror, created_at';
const UPSTREAM_COLUMNS = 'cache, url, public_keys, priority';
const KEY_COLUMNS = 'cache, name, secret_key, public_key, state, created_at';
const TOKEN_COLUMNS = 'id, hash, label, cache, permission, created_at, expires_at, revoked_at';
const NAR_COLUMNS = 'cache, file_hash, url, compression, file_size, nar_hash, nar_size, created_at';
const PATH_COLUMNS = 'cache, hash_part, base, file_hash, nar_size, narinfo, created_at';

const KEY_STATES: readonly KeyState[] = ['active', 'published', 'retired'];
const PERMISSIONS: readonly Permission[] = ['read', 'write', 'admin'];

function oneOf<T extends string>(allowed: readonly T[], value: string, column: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new Error(`index column ${column} holds '${value}', not one of ${allowed.join(', ')}`);
  return found;
}

function cacheFromRow(row: CacheRow): CacheRecord {
  return {
    name: row.name,
    public: row.is_public === 1,
    priority: row.priority,
    compression: row.compression,
    mirror: row.mirror === 1,
    createdAt: row.created_at,
  };
}

function cacheToParams(cache: CacheRecord): SqlValue[] {
  return [cache.name, cache.public ? 1 : 0, cache.priority, cache.compression, cache.mirror ? 1 : 0, cache.createdAt];
}

function upstreamFromRow(row: UpstreamRow): UpstreamRecord {
  return { cache: row.cache, url: row.url, publicKeys: row.public_keys.split(' ').filter(Boolean), priority: row.priority };
}

/** How keys are stored, and compared to tell a kept upstream from a replaced one. */
function keysColumn(upstream: Upstream): string {
  return upstream.publicKeys.join(' ');
}

function presenceFromRow(row: PresenceRow): UpstreamPresence {
  return { url: row.url, hashPart: row.hash_part, present: row.present === 1, checkedAt: row.checked_at };
}

function keyFromRow(row: KeyRow): KeyRecord {
  return {
    cache: row.cache,
    name: row.name,
    secretKey: row.secret_key,
    publicKey: row.public_key,
    state: oneOf(KEY_STATES, row.state, 'keys.state'),
    createdAt: row.created_at,
  };
}

function keyToParams(key: KeyRecord): SqlValue[] {
  return [key.cache, key.name, key.secretKey, key.publicKey, key.state, key.createdAt];
}

function tokenFromRow(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    hash: row.hash,
    label: row.label,
    cache: row.cache,
    permission: oneOf(PERMISSIONS, row.permission, 'tokens.permission'),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

function tokenToParams(token: TokenRecord): SqlValue[] {
  return [
    token.id,
    token.hash,
    token.label,
    token.cache,
    token.permission,
    token.createdAt,
    token.expiresAt,
    token.revokedAt,
  ];
}

function narFromRow(row: NarRow): NarRecord {
  return {
    cache: row.cache,
    fileHash: row.file_hash,
    url: row.url,
    compression: row.compression,
    fileSize: row.file_size,
    narHash: row.nar_hash,
    narSize: row.nar_size,
    createdAt: row.created_at,
  };
}

function narToParams(nar: NarRecord): SqlValue[] {
  return [nar.cache, nar.fileHash, nar.url, nar.compression, nar.fileSize, nar.narHash, nar.narSize, nar.createdAt];
}

function pathFromRow(row: PathRow, references: string[]): PathRecord {
  return {
    cache: row.cache,
    hashPart: row.hash_part,
    base: row.base,
    fileHash: row.file_hash,
    narSize: row.nar_size,
    references,
    narinfo: row.narinfo,
    createdAt: row.created_at,
  };
}

function pathToParams(path: PathRecord): SqlValue[] {
  return [path.cache, path.hashPart, path.base, path.fileHash, path.narSize, path.narinfo, path.createdAt];
}

function placeholders(count: number): string {
  return Array.from({ length: count }, () => '?').join(', ');
}

/** Code-unit order, the same on every database whatever its collation. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = [];
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size));
  return result;
}

export interface SqlIndexOptions {
  /** The clock leases expire by; default Date.now. */
  readonly now?: () => number;
}

export class SqlIndex implements CacheIndex {
  readonly #db: SqlDriver;
  readonly #now: () => number;

  /** `db` must already be migrated; see `migrate`. */
  constructor(db: SqlDriver, options: SqlIndexOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
  }

  /** The engine behind this index. */
  get dialect(): SqlDriver['dialect'] {
    return this.#db.dialect;
  }

  /** The version of the schema the database is at. */
  schemaVersion(): Promise<number> {
    return schemaVersion(this.#db);
  }

  async createCache(cache: CacheRecord): Promise<void> {
    await this.#db.run(`INSERT INTO caches (${CACHE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`, cacheToParams(cache));
  }

  async getCache(name: string): Promise<CacheRecord | undefined> {
    const row = await this.#db.get<CacheRow>(`SELECT ${CACHE_COLUMNS} FROM caches WHERE name = ?`, [name]);
    return row && cacheFromRow(row);
  }

  async listCaches(): Promise<CacheRecord[]> {
    // Sorted here rather than by ORDER BY, which follows the database's collation.
    const rows = await this.#db.all<CacheRow>(`SELECT ${CACHE_COLUMNS} FROM caches`);
    return rows.map(cacheFromRow).sort((a, b) => compareText(a.name, b.name));
  }

  async updateCache(
    name: string,
    patch: Partial<Pick<CacheRecord, 'public' | 'priority' | 'compression' | 'mirror'>>,
  ): Promise<CacheRecord | undefined> {
    const assignments: string[] = [];
    const params: SqlValue[] = [];
    if (patch.public !== undefined) {
      assignments.push('is_public = ?');
      params.push(patch.public ? 1 : 0);
    }
    if (patch.priority !== undefined) {
      assignments.push('priority = ?');
      params.push(patch.priority);
    }
    if (patch.compression !== undefined) {
      assignments.push('compression = ?');
      params.push(patch.compression);
    }
    if (patch.mirror !== undefined) {
      assignments.push('mirror = ?');
      params.push(patch.mirror ? 1 : 0);
    }
    if (assignments.length === 0) return this.getCache(name);
    const rows = await this.#db.all<CacheRow>(
      `UPDATE caches SET ${assignments.join(', ')} WHERE name = ? RETURNING ${CACHE_COLUMNS}`,
      [...params, name],
    );
    return rows[0] && cacheFromRow(rows[0]);
  }

  async deleteCache(name: string): Promise<boolean> {
    // Keys, tokens, nars, paths and refs go with it: ON DELETE CASCADE.
    const { changes } = await this.#db.run('DELETE FROM caches WHERE name = ?', [name]);
    return changes > 0;
  }

  async addKey(key: KeyRecord): Promise<void> {
    await this.#db.run(`INSERT INTO keys (${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`, keyToParams(key));
  }

  async listKeys(cache: string): Promise<KeyRecord[]> {
    const rows = await this.#db.all<KeyRow>(`SELECT ${KEY_COLUMNS} FROM keys WHERE cache = ?`, [cache]);
    return rows.map(keyFromRow).sort((a, b) => a.createdAt - b.createdAt || compareText(a.name, b.name));
  }

  async setKeyState(cache: string, name: string, state: KeyState): Promise<boolean> {
    const { changes } = await this.#db.run('UPDATE keys SET state = ? WHERE cache = ? AND name = ?', [state, cache, name]);
    return changes > 0;
  }

  async createToken(token: TokenRecord): Promise<void> {
    await this.#db.run(`INSERT INTO tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tokenToParams(token));
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | undefined> {
    const row = await this.#db.get<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = ?`, [hash]);
    return row && tokenFromRow(row);
  }

  async listTokens(cache?: string): Promise<TokenRecord[]> {
    const rows =
      cache === undefined
        ? await this.#db.all<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens`)
        : await this.#db.all<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE cache = ?`, [cache]);
    return rows.map(tokenFromRow).sort((a, b) => a.createdAt - b.createdAt || compareText(a.id, b.id));
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    const { changes } = await this.#db.run('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [at, id]);
    return changes > 0;
  }

  async getNar(cache: string, fileHash: string): Promise<NarRecord | undefined> {
    const row = await this.#db.get<NarRow>(`SELECT ${NAR_COLUMNS} FROM nars WHERE cache = ? AND file_hash = ?`, [
      cache,
      fileHash,
    ]);
    return row && narFromRow(row);
  }

  async putNar(nar: NarRecord): Promise<void> {
    await this.#db.run(
      `INSERT INTO nars (${NAR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      narToParams(nar),
    );
  }

  // Two reads without a transaction (a write lock on SQLite): a path row never
  // changes once written, so they can only disagree if the path is deleted in
  // between, and then the answer is as stale as any read racing a delete.
  async getPath(cache: string, hashPart: string): Promise<PathRecord | undefined> {
    const row = await this.#db.get<PathRow>(`SELECT ${PATH_COLUMNS} FROM paths WHERE cache = ? AND hash_part = ?`, [
      cache,
      hashPart,
    ]);
    if (!row) return undefined;
    const refs = await this.#db.all<{ ref_hash_part: string }>(
      'SELECT ref_hash_part FROM refs WHERE cache = ? AND hash_part = ?',
      [cache, hashPart],
    );
    // Sorted here rather than by ORDER BY, which follows the database's collation.
    return pathFromRow(row, refs.map((r) => r.ref_hash_part).sort());
  }

  async putPath(path: PathRecord): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const { changes } = await tx.run(
        `INSERT INTO paths (${PATH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        pathToParams(path),
      );
      if (changes === 0) return false;
      for (const chunk of chunks([...new Set(path.references)], REFS_INSERT_CHUNK)) {
        await tx.run(
          `INSERT INTO refs (cache, hash_part, ref_hash_part) VALUES ${chunk.map(() => '(?, ?, ?)').join(', ')}`,
          chunk.flatMap((ref) => [path.cache, path.hashPart, ref]),
        );
      }
      return true;
    });
  }

  async presentPaths(cache: string, hashParts: readonly string[]): Promise<Set<string>> {
    const present = new Set<string>();
    for (const chunk of chunks([...new Set(hashParts)], IN_LIST_CHUNK)) {
      const rows = await this.#db.all<{ hash_part: string }>(
        `SELECT hash_part FROM paths WHERE cache = ? AND hash_part IN (${placeholders(chunk.length)})`,
        [cache, ...chunk],
      );
      for (const row of rows) present.add(row.hash_part);
    }
    return present;
  }

  async listUpstreams(cache: string): Promise<UpstreamRecord[]> {
    const rows = await this.#db.all<UpstreamRow>(`SELECT ${UPSTREAM_COLUMNS} FROM upstreams WHERE cache = ?`, [cache]);
    // Sorted here rather than by ORDER BY, which follows the database's collation.
    return rows.map(upstreamFromRow).sort((a, b) => a.priority - b.priority || (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
  }

  async setUpstreams(cache: string, upstreams: readonly Upstream[]): Promise<void> {
    const wanted = new Map(upstreams.map((u) => [u.url, keysColumn(u)]));
    if (wanted.size !== upstreams.length) throw new IndexConflictError(`cache ${cache}: an upstream URL is listed twice`);
    await this.#db.transaction(async (tx) => {
      // Replacements of one cache's upstreams run one at a time: a no-op UPDATE locks the cache's
      // row until commit on PostgreSQL (SQLite's transaction holds the write lock anyway), so that
      // two replacing at once leave one list or the other, never a mix of both.
      await tx.run('UPDATE caches SET mirror = mirror WHERE name = ?', [cache]);
      const existing = await tx.all<UpstreamRow>(`SELECT ${UPSTREAM_COLUMNS} FROM upstreams WHERE cache = ?`, [cache]);
      for (const row of existing) {
        // Deleting cascades to the presence answers; an upstream kept as it was keeps them.
        if (wanted.get(row.url) !== row.public_keys) {
          await tx.run('DELETE FROM upstreams WHERE cache = ? AND url = ?', [cache, row.url]);
        }
      }
      for (const upstream of upstreams) {
        await tx.run(
          `INSERT INTO upstreams (${UPSTREAM_COLUMNS}) VALUES (?, ?, ?, ?)
           ON CONFLICT (cache, url) DO UPDATE SET priority = excluded.priority`,
          [cache, upstream.url, keysColumn(upstream), upstream.priority],
        );
      }
    });
  }

  async getUpstreamPresence(cache: string, hashParts: readonly string[]): Promise<UpstreamPresence[]> {
    const answers: UpstreamPresence[] = [];
    for (const chunk of chunks([...new Set(hashParts)], IN_LIST_CHUNK)) {
      const rows = await this.#db.all<PresenceRow>(
        `SELECT url, hash_part, present, checked_at FROM upstream_presence
         WHERE cache = ? AND hash_part IN (${placeholders(chunk.length)})`,
        [cache, ...chunk],
      );
      answers.push(...rows.map(presenceFromRow));
    }
    return answers;
  }

  async recordUpstreamPresence(upstream: UpstreamRecord, answers: readonly PresenceAnswer[]): Promise<void> {
    // One row per hash part (the last answer wins): PostgreSQL refuses to upsert a row twice in one statement.
    const latest = [...new Map(answers.map((a) => [a.hashPart, a])).values()];
    if (latest.length === 0) return;
    await this.#db.transaction(async (tx) => {
      // A no-op UPDATE rather than a SELECT: it locks the upstream's row until commit (on SQLite the
      // transaction holds the write lock anyway), so that a concurrent setUpstreams cannot remove
      // or re-key it between this check and the inserts on PostgreSQL, where writers run at once.
      const current = await tx.get<{ public_keys: string }>(
        'UPDATE upstreams SET public_keys = public_keys WHERE cache = ? AND url = ? RETURNING public_keys',
        [upstream.cache, upstream.url],
      );
      if (current?.public_keys !== keysColumn(upstream)) return;
      for (const chunk of chunks(latest, PRESENCE_INSERT_CHUNK)) {
        await tx.run(
          `INSERT INTO upstream_presence (cache, url, hash_part, present, checked_at)
           VALUES ${chunk.map(() => '(?, ?, ?, ?, ?)').join(', ')}
           ON CONFLICT (cache, url, hash_part) DO UPDATE SET present = excluded.present, checked_at = excluded.checked_at`,
          chunk.flatMap((a) => [upstream.cache, upstream.url, a.hashPart, a.present ? 1 : 0, a.checkedAt]),
        );
      }
    });
  }

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`lease TTL must be a positive whole number of ms, got ${ttlMs}`);
    const now = this.#now();
    // One statement: a free name is inserted; an expired lease, or one this holder has, is taken
    // over or renewed; a live lease of another holder is left alone and no row changes.
    const { changes } = await this.#db.run(
      `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leases.expires_at <= ? OR leases.holder = ?`,
      [name, holder, now + ttlMs, now, holder],
    );
    return changes === 1;
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    const { changes } = await this.#db.run('DELETE FROM leases WHERE name = ? AND holder = ?', [name, holder]);
    return changes > 0;
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}

/** Migrates `db` and wraps it as the index; closes `db` when the migration fails. */
export async function migratedIndex(db: SqlDriver, options?: SqlIndexOptions): Promise<SqlIndex> {
  try {
    await migrate(db);
  } catch (error) {
    await db.close();
    throw error;
  }
  return new SqlIndex(db, options);
}

/** The embedded index: opens the SQLite file at `path`, brings its schema up to date. */
export async function openSqliteIndex(path: string, options?: SqliteOptions): Promise<SqlIndex> {
  return migratedIndex(openSqlite(path, options));
}

/**
 * The shared index of replicas: connects to the PostgreSQL database at `url`, brings its schema
 * up to date (safely when several replicas start at once).
 */
export async function openPostgresIndex(url: string, options?: PostgresOptions): Promise<SqlIndex> {
  return migratedIndex(await openPostgres(url, options));
}
