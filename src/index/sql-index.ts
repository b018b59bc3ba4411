// CacheIndex in SQL, over any SqlDriver: the same statements run on node:sqlite
// and PostgreSQL. Rows and records meet only in the `...FromRow` functions.

import {
  IndexConflictError,
  IndexPreconditionError,
  type CacheIndex,
  type CachePatch,
  type CacheRecord,
  type CacheStats,
  type DeletedPath,
  type DeletionCandidate,
  type KeyRecord,
  type KeyState,
  type NarClaim,
  type NarClaimRules,
  type NarRecord,
  type MirroredNarInfo,
  type PathDeletion,
  type PathFacts,
  type PathRecord,
  type PathRequirements,
  type Permission,
  type PinRecord,
  type PresenceAnswer,
  type ReferenceRow,
  type SparedPath,
  type TokenRecord,
  type Upstream,
  type UpstreamPresence,
  type UpstreamRecord,
} from './cache-index.ts';
import { migrate, schemaVersion } from './migrations.ts';
import type { CacheTotals, ClosureSize, PathSummary, UsageBatch, UsageDay } from './cache-index.ts';
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
  retention_ms: number | null;
  max_size: number | null;
  generation: number;
}

interface PinRow {
  cache: string;
  name: string;
  hash_part: string;
  base: string;
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
  upstream: string | null;
}

interface MirroredNarInfoRow {
  cache: string;
  hash_part: string;
  file_name: string;
  upstream: string;
  nar_url: string;
  narinfo: string;
  fetched_at: number;
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

const CACHE_COLUMNS = 'name, is_public, priority, compression, mirror, created_at, retention_ms, max_size, generation';
const PIN_COLUMNS = 'cache, name, hash_part, base, created_at';
/** A path's last access: the recorded one, or its creation when that is later (or none was recorded). */
const ACCESSED_AT = (table: string) =>
  `CASE WHEN ${table}.last_access IS NULL OR ${table}.last_access < ${table}.created_at THEN ${table}.created_at ELSE ${table}.last_access END`;
const UPSTREAM_COLUMNS = 'cache, url, public_keys, priority';
const KEY_COLUMNS = 'cache, name, secret_key, public_key, state, created_at';
const TOKEN_COLUMNS = 'id, hash, label, cache, permission, created_at, expires_at, revoked_at';
const NAR_COLUMNS = 'cache, file_hash, url, compression, file_size, nar_hash, nar_size, created_at, upstream';
const MIRRORED_COLUMNS = 'cache, hash_part, file_name, upstream, nar_url, narinfo, fetched_at';
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
    retentionMs: row.retention_ms,
    maxSize: row.max_size,
    generation: row.generation,
  };
}

function cacheToParams(cache: CacheRecord): SqlValue[] {
  return [
    cache.name,
    cache.public ? 1 : 0,
    cache.priority,
    cache.compression,
    cache.mirror ? 1 : 0,
    cache.createdAt,
    // `?? …`: records from callers written before these fields existed.
    cache.retentionMs ?? null,
    cache.maxSize ?? null,
    cache.generation ?? 0,
  ];
}

function pinFromRow(row: PinRow): PinRecord {
  return { cache: row.cache, name: row.name, hashPart: row.hash_part, base: row.base, createdAt: row.created_at };
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
    ...(row.upstream === null ? {} : { upstream: row.upstream }),
  };
}

function narToParams(nar: NarRecord): SqlValue[] {
  return [nar.cache, nar.fileHash, nar.url, nar.compression, nar.fileSize, nar.narHash, nar.narSize, nar.createdAt, nar.upstream ?? null];
}

function mirroredFromRow(row: MirroredNarInfoRow): MirroredNarInfo {
  return {
    cache: row.cache,
    hashPart: row.hash_part,
    fileName: row.file_name,
    upstream: row.upstream,
    narUrl: row.nar_url,
    narinfo: row.narinfo,
    fetchedAt: row.fetched_at,
  };
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

/** Locks these paths' rows until the transaction ends (a no-op UPDATE); the hash parts found. */
async function lockPaths(tx: SqlDriver, cache: string, hashParts: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const chunk of chunks(hashParts, IN_LIST_CHUNK)) {
    const rows = await tx.all<{ hash_part: string }>(
      `UPDATE paths SET last_access = last_access WHERE cache = ? AND hash_part IN (${placeholders(chunk.length)}) RETURNING hash_part`,
      [cache, ...chunk],
    );
    for (const row of rows) found.add(row.hash_part);
  }
  return found;
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
    await this.#db.run(`INSERT INTO caches (${CACHE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, cacheToParams(cache));
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

  async cacheStats(): Promise<CacheStats[]> {
    // Per cache, each count walks its own primary-key range; SUM is cast because PostgreSQL sums BIGINT as NUMERIC.
    const rows = await this.#db.all<{ cache: string; paths: number; nars: number; nar_bytes: number }>(
      `SELECT c.name AS cache,
         (SELECT COUNT(*) FROM paths p WHERE p.cache = c.name) AS paths,
         (SELECT COUNT(*) FROM nars n WHERE n.cache = c.name) AS nars,
         (SELECT CAST(COALESCE(SUM(n.file_size), 0) AS BIGINT) FROM nars n WHERE n.cache = c.name) AS nar_bytes
       FROM caches c`,
    );
    return rows
      .map((row) => ({ cache: row.cache, paths: Number(row.paths), nars: Number(row.nars), narBytes: Number(row.nar_bytes) }))
      .sort((a, b) => compareText(a.cache, b.cache));
  }

  async updateCache(name: string, patch: CachePatch): Promise<CacheRecord | undefined> {
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
    if (patch.retentionMs !== undefined) {
      assignments.push('retention_ms = ?');
      params.push(patch.retentionMs);
    }
    if (patch.maxSize !== undefined) {
      assignments.push('max_size = ?');
      params.push(patch.maxSize);
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
    const row = await this.#db.get<NarRow>(
      `SELECT ${NAR_COLUMNS} FROM nars WHERE cache = ? AND file_hash = ? AND deleting_at IS NULL`,
      [cache, fileHash],
    );
    return row && narFromRow(row);
  }

  async touchNar(cache: string, fileHash: string, at: number): Promise<NarRecord | undefined> {
    // One statement: garbage collection's claim (deleting_at) and this renewal exclude each other.
    const row = await this.#db.get<NarRow>(
      `UPDATE nars SET created_at = CASE WHEN created_at < ? THEN ? ELSE created_at END
       WHERE cache = ? AND file_hash = ? AND deleting_at IS NULL RETURNING ${NAR_COLUMNS}`,
      [at, at, cache, fileHash],
    );
    return row && narFromRow(row);
  }

  async narDeleting(cache: string, fileHash: string): Promise<boolean> {
    const row = await this.#db.get<{ deleting_at: number | null }>('SELECT deleting_at FROM nars WHERE cache = ? AND file_hash = ?', [
      cache,
      fileHash,
    ]);
    return row !== undefined && row.deleting_at !== null;
  }

  async putNar(nar: NarRecord): Promise<void> {
    await this.#db.run(
      `INSERT INTO nars (${NAR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
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

  async putPath(path: PathRecord, requirements: PathRequirements = {}): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      // No-op UPDATEs lock the NAR and the referenced paths until commit (on SQLite the transaction
      // holds the write lock anyway): garbage collection, which locks them the same way before it
      // deletes, either runs first (and this finds them gone) or waits and then sees this path.
      let missingNar = false;
      if (requirements.nar) {
        const nar = await tx.get<{ file_hash: string }>(
          'UPDATE nars SET deleting_at = deleting_at WHERE cache = ? AND file_hash = ? AND deleting_at IS NULL RETURNING file_hash',
          [path.cache, path.fileHash],
        );
        missingNar = nar === undefined;
      }
      const required = [...new Set(requirements.references ?? [])].filter((r) => r !== path.hashPart).sort();
      const locked = await lockPaths(tx, path.cache, required);
      const missing = required.filter((r) => !locked.has(r));
      if (missingNar || missing.length > 0) {
        const what = [...(missingNar ? [`its NAR ${path.fileHash}`] : []), ...(missing.length > 0 ? [`references ${missing.join(' ')}`] : [])];
        throw new IndexPreconditionError(`${path.base}: ${what.join(' and ')} no longer in cache ${path.cache}`, {
          nar: missingNar,
          paths: missing,
        });
      }
      const { changes } = await tx.run(
        `INSERT INTO paths (${PATH_COLUMNS}, file_size)
         VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT file_size FROM nars WHERE cache = ? AND file_hash = ?)) ON CONFLICT DO NOTHING`,
        [...pathToParams(path), path.cache, path.fileHash],
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

  async pathBases(cache: string, hashParts: readonly string[]): Promise<Map<string, string>> {
    const bases = new Map<string, string>();
    for (const chunk of chunks([...new Set(hashParts)], IN_LIST_CHUNK)) {
      const rows = await this.#db.all<{ hash_part: string; base: string }>(
        `SELECT hash_part, base FROM paths WHERE cache = ? AND hash_part IN (${placeholders(chunk.length)})`,
        [cache, ...chunk],
      );
      for (const row of rows) bases.set(row.hash_part, row.base);
    }
    return bases;
  }

  async referrers(cache: string, hashParts: readonly string[]): Promise<ReferenceRow[]> {
    const found: ReferenceRow[] = [];
    for (const chunk of chunks([...new Set(hashParts)], IN_LIST_CHUNK)) {
      const rows = await this.#db.all<{ hash_part: string; ref_hash_part: string }>(
        `SELECT hash_part, ref_hash_part FROM refs
         WHERE cache = ? AND ref_hash_part IN (${placeholders(chunk.length)}) AND hash_part <> ref_hash_part`,
        [cache, ...chunk],
      );
      for (const row of rows) found.push({ hashPart: row.hash_part, refHashPart: row.ref_hash_part });
    }
    return found;
  }

  async touchPaths(cache: string, hashParts: readonly string[], at: number): Promise<void> {
    await this.#touch(cache, 'hash_part', hashParts, at);
  }

  async touchPathsByNar(cache: string, fileHashes: readonly string[], at: number): Promise<void> {
    await this.#touch(cache, 'file_hash', fileHashes, at);
  }

  // Only ever moves last_access forwards, so that replicas flushing in any order agree.
  async #touch(cache: string, column: 'hash_part' | 'file_hash', keys: readonly string[], at: number): Promise<void> {
    for (const chunk of chunks([...new Set(keys)].sort(), IN_LIST_CHUNK)) {
      await this.#db.run(
        `UPDATE paths SET last_access = ?
         WHERE cache = ? AND ${column} IN (${placeholders(chunk.length)}) AND (last_access IS NULL OR last_access < ?)`,
        [at, cache, ...chunk, at],
      );
    }
  }

  async putPin(cache: string, name: string, hashPart: string, at: number): Promise<PinRecord> {
    return this.#db.transaction(async (tx) => {
      // Locks the path as putPath does its references: a deletion either ran first or sees the pin.
      const path = await tx.get<{ base: string }>(
        'UPDATE paths SET last_access = last_access WHERE cache = ? AND hash_part = ? RETURNING base',
        [cache, hashPart],
      );
      if (!path) throw new IndexPreconditionError(`${hashPart} is not in cache ${cache}`, { paths: [hashPart] });
      const pin: PinRecord = { cache, name, hashPart, base: path.base, createdAt: at };
      await tx.run(
        `INSERT INTO pins (${PIN_COLUMNS}) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (cache, name) DO UPDATE SET hash_part = excluded.hash_part, base = excluded.base, created_at = excluded.created_at`,
        [pin.cache, pin.name, pin.hashPart, pin.base, pin.createdAt],
      );
      return pin;
    });
  }

  async listPins(cache: string): Promise<PinRecord[]> {
    const rows = await this.#db.all<PinRow>(`SELECT ${PIN_COLUMNS} FROM pins WHERE cache = ?`, [cache]);
    return rows.map(pinFromRow).sort((a, b) => compareText(a.name, b.name));
  }

  async deletePin(cache: string, name: string): Promise<boolean> {
    const { changes } = await this.#db.run('DELETE FROM pins WHERE cache = ? AND name = ?', [cache, name]);
    return changes > 0;
  }

  async pathFactsPage(cache: string, after: string, limit: number): Promise<PathFacts[]> {
    const rows = await this.#db.all<{
      hash_part: string;
      file_hash: string;
      nar_size: number;
      file_size: number | null;
      accessed_at: number;
    }>(
      `SELECT hash_part, file_hash, nar_size, file_size, ${ACCESSED_AT('paths')} AS accessed_at
       FROM paths WHERE cache = ? AND hash_part > ? ORDER BY hash_part LIMIT ?`,
      [cache, after, limit],
    );
    return rows.map((row) => ({
      hashPart: row.hash_part,
      fileHash: row.file_hash,
      narSize: row.nar_size,
      fileSize: row.file_size ?? 0,
      accessedAt: row.accessed_at,
    }));
  }

  async referencesPage(cache: string, after: ReferenceRow | undefined, limit: number): Promise<ReferenceRow[]> {
    const rows = await this.#db.all<{ hash_part: string; ref_hash_part: string }>(
      `SELECT hash_part, ref_hash_part FROM refs WHERE cache = ? AND (hash_part, ref_hash_part) > (?, ?)
       ORDER BY hash_part, ref_hash_part LIMIT ?`,
      [cache, after?.hashPart ?? '', after?.refHashPart ?? '', limit],
    );
    return rows.map((row) => ({ hashPart: row.hash_part, refHashPart: row.ref_hash_part }));
  }

  async sharedNars(cache: string): Promise<string[]> {
    const rows = await this.#db.all<{ file_hash: string }>(
      'SELECT file_hash FROM paths WHERE cache = ? GROUP BY file_hash HAVING count(*) > 1',
      [cache],
    );
    return rows.map((row) => row.file_hash);
  }

  async deletePaths(
    cache: string,
    candidates: readonly DeletionCandidate[],
    options: { allOrNothing?: boolean } = {},
  ): Promise<PathDeletion> {
    const wanted = new Map(candidates.map((c) => [c.hashPart, c]));
    if (wanted.size === 0) return { deleted: [], spared: [] };
    return this.#db.transaction(async (tx) => {
      const hashParts = [...wanted.keys()].sort();
      // Lock first, then look (each statement sees what committed before it on PostgreSQL): a
      // putPath or putPin that locked one of these paths has committed by now, and is seen below.
      const rows = new Map<string, { base: string; file_hash: string; nar_size: number; accessed_at: number }>();
      for (const chunk of chunks(hashParts, IN_LIST_CHUNK)) {
        const locked = await tx.all<{ hash_part: string; base: string; file_hash: string; nar_size: number; accessed_at: number }>(
          `UPDATE paths SET last_access = last_access WHERE cache = ? AND hash_part IN (${placeholders(chunk.length)})
           RETURNING hash_part, base, file_hash, nar_size, ${ACCESSED_AT('paths')} AS accessed_at`,
          [cache, ...chunk],
        );
        for (const row of locked) rows.set(row.hash_part, row);
      }
      const spared = new Map<string, SparedPath>();
      const spare = (hashPart: string, reason: SparedPath['reason'], by?: string) => {
        if (!spared.has(hashPart)) spared.set(hashPart, { hashPart, reason, ...(by !== undefined && { by }) });
      };
      for (const [hashPart, candidate] of wanted) {
        const row = rows.get(hashPart);
        if (!row) spare(hashPart, 'absent');
        else if (candidate.accessedAt !== undefined && row.accessed_at > candidate.accessedAt) spare(hashPart, 'accessed');
      }
      const present = [...rows.keys()];
      for (const chunk of chunks(present, IN_LIST_CHUNK)) {
        const pins = await tx.all<{ name: string; hash_part: string }>(
          `SELECT name, hash_part FROM pins WHERE cache = ? AND hash_part IN (${placeholders(chunk.length)})`,
          [cache, ...chunk],
        );
        for (const pin of pins) spare(pin.hash_part, 'pinned', pin.name);
      }
      const referrersOf = new Map<string, string[]>();
      for (const chunk of chunks(present, IN_LIST_CHUNK)) {
        const refs = await tx.all<{ hash_part: string; ref_hash_part: string }>(
          `SELECT hash_part, ref_hash_part FROM refs
           WHERE cache = ? AND ref_hash_part IN (${placeholders(chunk.length)}) AND hash_part <> ref_hash_part`,
          [cache, ...chunk],
        );
        for (const ref of refs) {
          const list = referrersOf.get(ref.ref_hash_part);
          if (list) list.push(ref.hash_part);
          else referrersOf.set(ref.ref_hash_part, [ref.hash_part]);
        }
      }
      // A path stays while anything that stays refers to it, until nothing changes.
      const doomed = new Set(present.filter((h) => !spared.has(h)));
      for (let changed = true; changed; ) {
        changed = false;
        for (const hashPart of doomed) {
          const keeper = referrersOf.get(hashPart)?.find((r) => !doomed.has(r));
          if (keeper !== undefined) {
            doomed.delete(hashPart);
            spare(hashPart, 'referenced', keeper);
            changed = true;
          }
        }
      }
      if (options.allOrNothing && spared.size > 0) return { deleted: [], spared: [...spared.values()] };
      const deleted: DeletedPath[] = [];
      for (const chunk of chunks([...doomed], IN_LIST_CHUNK)) {
        await tx.run(`DELETE FROM paths WHERE cache = ? AND hash_part IN (${placeholders(chunk.length)})`, [cache, ...chunk]);
        for (const hashPart of chunk) {
          const row = rows.get(hashPart)!;
          deleted.push({ hashPart, base: row.base, fileHash: row.file_hash, narSize: row.nar_size });
        }
      }
      if (deleted.length > 0) await tx.run('UPDATE caches SET generation = generation + 1 WHERE name = ?', [cache]);
      return { deleted, spared: [...spared.values()] };
    });
  }

  async orphanNarsPage(cache: string, rules: NarClaimRules, after: string, limit: number): Promise<NarClaim[]> {
    const rows = await this.#db.all<{ file_hash: string; url: string; file_size: number }>(
      `SELECT n.file_hash, n.url, n.file_size FROM nars n
       WHERE n.cache = ? AND n.file_hash > ?
         AND ((n.deleting_at IS NULL AND n.created_at < ?
               AND NOT EXISTS (SELECT 1 FROM paths p WHERE p.cache = n.cache AND p.file_hash = n.file_hash))
              OR n.deleting_at < ?)
       ORDER BY n.file_hash LIMIT ?`,
      [cache, after, rules.createdBefore, rules.staleClaimBefore, limit],
    );
    return rows.map((row) => ({ fileHash: row.file_hash, url: row.url, fileSize: row.file_size }));
  }

  async claimNars(cache: string, fileHashes: readonly string[], rules: NarClaimRules): Promise<NarClaim[]> {
    const unique = [...new Set(fileHashes)].sort();
    if (unique.length === 0) return [];
    return this.#db.transaction(async (tx) => {
      const claimed = new Map<string, NarClaim>();
      for (const chunk of chunks(unique, IN_LIST_CHUNK)) {
        const rows = await tx.all<{ file_hash: string; url: string; file_size: number }>(
          `UPDATE nars SET deleting_at = ?
           WHERE cache = ? AND file_hash IN (${placeholders(chunk.length)})
             AND ((deleting_at IS NULL AND created_at < ?) OR deleting_at < ?)
           RETURNING file_hash, url, file_size`,
          [rules.at, cache, ...chunk, rules.createdBefore, rules.staleClaimBefore],
        );
        for (const row of rows) claimed.set(row.file_hash, { fileHash: row.file_hash, url: row.url, fileSize: row.file_size });
      }
      // A separate statement, after the claims locked the rows: a putPath that locked one of these
      // NARs first has committed, and its path is seen here.
      for (const chunk of chunks([...claimed.keys()], IN_LIST_CHUNK)) {
        const used = await tx.all<{ file_hash: string }>(
          `SELECT DISTINCT file_hash FROM paths WHERE cache = ? AND file_hash IN (${placeholders(chunk.length)})`,
          [cache, ...chunk],
        );
        if (used.length === 0) continue;
        const keep = used.map((u) => u.file_hash);
        await tx.run(`UPDATE nars SET deleting_at = NULL WHERE cache = ? AND file_hash IN (${placeholders(keep.length)})`, [cache, ...keep]);
        for (const fileHash of keep) claimed.delete(fileHash);
      }
      return [...claimed.values()];
    });
  }

  async dropClaimedNars(cache: string, fileHashes: readonly string[]): Promise<number> {
    let dropped = 0;
    for (const chunk of chunks([...new Set(fileHashes)], IN_LIST_CHUNK)) {
      const { changes } = await this.#db.run(
        `DELETE FROM nars WHERE cache = ? AND file_hash IN (${placeholders(chunk.length)}) AND deleting_at IS NOT NULL`,
        [cache, ...chunk],
      );
      dropped += changes;
    }
    return dropped;
  }

  async presentNars(cache: string, fileHashes: readonly string[]): Promise<Set<string>> {
    const present = new Set<string>();
    for (const chunk of chunks([...new Set(fileHashes)], IN_LIST_CHUNK)) {
      const rows = await this.#db.all<{ file_hash: string }>(
        `SELECT file_hash FROM nars WHERE cache = ? AND file_hash IN (${placeholders(chunk.length)})`,
        [cache, ...chunk],
      );
      for (const row of rows) present.add(row.file_hash);
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
        // Deleting cascades to the presence answers; an upstream kept as it was keeps them. Narinfos
        // the mirror found there, NAR not fetched yet, go too: they were vouched for by the old keys.
        if (wanted.get(row.url) !== row.public_keys) {
          await tx.run('DELETE FROM upstreams WHERE cache = ? AND url = ?', [cache, row.url]);
          await tx.run('DELETE FROM mirrored_narinfos WHERE cache = ? AND upstream = ?', [cache, row.url]);
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

  async putMirroredNarInfo(entry: MirroredNarInfo): Promise<void> {
    await this.#db.run(
      `INSERT INTO mirrored_narinfos (${MIRRORED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cache, hash_part) DO UPDATE SET file_name = excluded.file_name, upstream = excluded.upstream,
         nar_url = excluded.nar_url, narinfo = excluded.narinfo, fetched_at = excluded.fetched_at`,
      [entry.cache, entry.hashPart, entry.fileName, entry.upstream, entry.narUrl, entry.narinfo, entry.fetchedAt],
    );
  }

  async getMirroredNarInfo(cache: string, hashPart: string): Promise<MirroredNarInfo | undefined> {
    const row = await this.#db.get<MirroredNarInfoRow>(
      `SELECT ${MIRRORED_COLUMNS} FROM mirrored_narinfos WHERE cache = ? AND hash_part = ?`,
      [cache, hashPart],
    );
    return row && mirroredFromRow(row);
  }

  async mirroredNarInfosByFile(cache: string, fileName: string): Promise<MirroredNarInfo[]> {
    const rows = await this.#db.all<MirroredNarInfoRow>(
      `SELECT ${MIRRORED_COLUMNS} FROM mirrored_narinfos WHERE cache = ? AND file_name = ? ORDER BY hash_part LIMIT 100`,
      [cache, fileName],
    );
    return rows.map(mirroredFromRow);
  }

  async deleteMirroredNarInfo(cache: string, hashPart: string): Promise<void> {
    await this.#db.run('DELETE FROM mirrored_narinfos WHERE cache = ? AND hash_part = ?', [cache, hashPart]);
  }

  async expireMirroredNarInfos(cache: string, before: number): Promise<number> {
    const { changes } = await this.#db.run('DELETE FROM mirrored_narinfos WHERE cache = ? AND fetched_at < ?', [cache, before]);
    return changes;
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

  // The dashboard (migration 6). Counts arrive in batches from services/access-log.ts; every read is bounded.

  /** Locks the cache's row until the transaction ends (a no-op UPDATE); false when the cache is gone. */
  async #lockCache(tx: SqlDriver, cache: string): Promise<boolean> {
    return (await tx.get('UPDATE caches SET generation = generation WHERE name = ? RETURNING name', [cache])) !== undefined;
  }

  async recordUsage(cache: string, usage: UsageBatch): Promise<void> {
    await this.#db.transaction(async (tx) => {
      // Paths first, then the cache's row, in the order garbage collection's deletions lock them
      // (so that the two never wait on each other in a cycle on PostgreSQL). One UPDATE per
      // distinct count: within a few seconds most NARs are downloaded once.
      const byCount = new Map<number, string[]>();
      for (const [fileHash, count] of usage.downloadsByNar) {
        if (count <= 0) continue;
        const list = byCount.get(count);
        if (list) list.push(fileHash);
        else byCount.set(count, [fileHash]);
      }
      for (const [count, fileHashes] of byCount) {
        for (const chunk of chunks(fileHashes.sort(), IN_LIST_CHUNK)) {
          await tx.run(`UPDATE paths SET downloads = downloads + ? WHERE cache = ? AND file_hash IN (${placeholders(chunk.length)})`, [
            count,
            cache,
            ...chunk,
          ]);
        }
      }
      if (usage.narinfoHits === 0 && usage.narinfoMisses === 0 && usage.narDownloads === 0) return;
      // Locked, so that a cache deleted at the same moment is seen here rather than failing the insert.
      if (!(await this.#lockCache(tx, cache))) return;
      await tx.run(
        `INSERT INTO cache_usage (cache, day, narinfo_hits, narinfo_misses, nar_downloads) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (cache, day) DO UPDATE SET narinfo_hits = cache_usage.narinfo_hits + excluded.narinfo_hits,
           narinfo_misses = cache_usage.narinfo_misses + excluded.narinfo_misses,
           nar_downloads = cache_usage.nar_downloads + excluded.nar_downloads`,
        [cache, usage.day, usage.narinfoHits, usage.narinfoMisses, usage.narDownloads],
      );
    });
  }

  async recordTotalsSample(cache: string, day: number, totals: CacheTotals): Promise<void> {
    await this.#db.transaction(async (tx) => {
      if (!(await this.#lockCache(tx, cache))) return;
      await tx.run(
        `INSERT INTO cache_usage (cache, day, paths, file_bytes, nar_bytes) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (cache, day) DO UPDATE SET paths = excluded.paths, file_bytes = excluded.file_bytes, nar_bytes = excluded.nar_bytes`,
        [cache, day, totals.paths, totals.fileBytes, totals.narBytes],
      );
    });
  }

  async cacheTotals(cache: string): Promise<CacheTotals> {
    // CAST: PostgreSQL sums BIGINTs as NUMERIC, which the driver would hand back as a string.
    const row = await this.#db.get<{ paths: number; file_bytes: number; nar_bytes: number }>(
      `SELECT count(*) AS paths, CAST(coalesce(sum(file_size), 0) AS BIGINT) AS file_bytes,
         CAST(coalesce(sum(nar_size), 0) AS BIGINT) AS nar_bytes
       FROM paths WHERE cache = ?`,
      [cache],
    );
    return { paths: row?.paths ?? 0, fileBytes: row?.file_bytes ?? 0, narBytes: row?.nar_bytes ?? 0 };
  }

  async usageHistory(cache: string, sinceDay: number, limit: number): Promise<UsageDay[]> {
    const rows = await this.#db.all<{
      day: number;
      narinfo_hits: number;
      narinfo_misses: number;
      nar_downloads: number;
      paths: number | null;
      file_bytes: number | null;
      nar_bytes: number | null;
    }>(
      `SELECT day, narinfo_hits, narinfo_misses, nar_downloads, paths, file_bytes, nar_bytes
       FROM cache_usage WHERE cache = ? AND day >= ? ORDER BY day LIMIT ?`,
      [cache, sinceDay, limit],
    );
    return rows.map((row) => ({
      day: row.day,
      narinfoHits: row.narinfo_hits,
      narinfoMisses: row.narinfo_misses,
      narDownloads: row.nar_downloads,
      totals: row.paths === null ? null : { paths: row.paths, fileBytes: row.file_bytes ?? 0, narBytes: row.nar_bytes ?? 0 },
    }));
  }

  async topDownloadedPaths(cache: string, limit: number): Promise<PathSummary[]> {
    // No tie-breaker in ORDER BY: the index (cache, downloads) then yields the rows in order and stops at the limit.
    return this.#summaries(`WHERE p.cache = ? AND p.downloads > 0 ORDER BY p.downloads DESC LIMIT ?`, [cache, limit]);
  }

  async recentPaths(cache: string, limit: number): Promise<PathSummary[]> {
    return this.#summaries(`WHERE p.cache = ? ORDER BY p.created_at DESC LIMIT ?`, [cache, limit]);
  }

  async searchPaths(cache: string, query: { hashPrefix?: string; nameNeedle?: string }, after: string, limit: number): Promise<PathSummary[]> {
    const matches: string[] = [];
    const params: SqlValue[] = [cache, after];
    if (query.hashPrefix !== undefined) {
      if (!/^[0-9a-z]*$/.test(query.hashPrefix)) throw new RangeError(`hash prefix '${query.hashPrefix}' is not nix32`);
      matches.push('p.hash_part LIKE ?');
      params.push(`${query.hashPrefix}%`);
    }
    if (query.nameNeedle !== undefined) {
      // The name follows the 32-character hash part and its dash; lower() both sides, since
      // SQLite's LIKE ignores ASCII case and PostgreSQL's does not.
      matches.push(`lower(substr(p.base, 34)) LIKE ? ESCAPE '\\'`);
      params.push(`%${query.nameNeedle.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    }
    if (matches.length === 0) return [];
    // Two steps: the matching hash parts from the index paths_by_name alone, then their rows.
    const found = await this.#db.all<{ hash_part: string }>(
      `SELECT p.hash_part FROM paths p WHERE p.cache = ? AND p.hash_part > ? AND (${matches.join(' OR ')}) ORDER BY p.hash_part LIMIT ?`,
      [...params, limit],
    );
    if (found.length === 0) return [];
    const hashParts = found.map((row) => row.hash_part);
    const rows: PathSummary[] = [];
    for (const chunk of chunks(hashParts, IN_LIST_CHUNK)) {
      rows.push(...(await this.#summaries(`WHERE p.cache = ? AND p.hash_part IN (${placeholders(chunk.length)})`, [cache, ...chunk])));
    }
    return rows.sort((a, b) => compareText(a.hashPart, b.hashPart));
  }

  async pathSummary(cache: string, hashPart: string): Promise<PathSummary | undefined> {
    return (await this.#summaries('WHERE p.cache = ? AND p.hash_part = ?', [cache, hashPart]))[0];
  }

  async referringPaths(cache: string, hashPart: string, after: string, limit: number): Promise<PathSummary[]> {
    // refs first (CROSS JOIN fixes the order on SQLite): the referrers through refs_by_target_source, then
    // their rows; not every path of the cache in hash order, looking each one's references up.
    return this.#summaries(
      `WHERE r.cache = ? AND r.ref_hash_part = ? AND r.hash_part <> r.ref_hash_part AND r.hash_part > ?
         AND p.cache = r.cache AND p.hash_part = r.hash_part
       ORDER BY r.hash_part LIMIT ?`,
      [cache, hashPart, after, limit],
      'refs r CROSS JOIN paths p',
    );
  }

  async #summaries(rest: string, params: readonly SqlValue[], from = 'paths p'): Promise<PathSummary[]> {
    const rows = await this.#db.all<{
      hash_part: string;
      base: string;
      nar_size: number;
      file_size: number | null;
      created_at: number;
      accessed_at: number;
      downloads: number;
    }>(`SELECT p.hash_part, p.base, p.nar_size, p.file_size, p.created_at, ${ACCESSED_AT('p')} AS accessed_at, p.downloads FROM ${from} ${rest}`, params);
    return rows.map((row) => ({
      hashPart: row.hash_part,
      base: row.base,
      narSize: row.nar_size,
      fileSize: row.file_size ?? 0,
      createdAt: row.created_at,
      accessedAt: row.accessed_at,
      downloads: row.downloads,
    }));
  }

  async closureSize(cache: string, hashPart: string, limit: number): Promise<ClosureSize> {
    // UNION (not UNION ALL) drops paths already reached, so the walk ends on shared references.
    // CROSS JOIN keeps the walk's queue as the outer loop on SQLite (which otherwise may scan refs
    // for every step); the outer LIMIT stops the walk itself, on both engines, once it has seen
    // `limit` paths. A LEFT JOIN counts walked paths the cache lacks (an upstream's) apart.
    const row = await this.#db.get<{ walked: number; paths: number; nar_bytes: number; file_bytes: number }>(
      `WITH RECURSIVE closure (hash_part) AS (
         SELECT hash_part FROM paths WHERE cache = ? AND hash_part = ?
         UNION
         SELECT r.ref_hash_part FROM closure c CROSS JOIN refs r WHERE r.cache = ? AND r.hash_part = c.hash_part
       ),
       walked (hash_part) AS (SELECT hash_part FROM closure LIMIT ?)
       SELECT count(*) AS walked, count(p.hash_part) AS paths, CAST(coalesce(sum(p.nar_size), 0) AS BIGINT) AS nar_bytes,
         CAST(coalesce(sum(p.file_size), 0) AS BIGINT) AS file_bytes
       FROM walked w LEFT JOIN paths p ON p.cache = ? AND p.hash_part = w.hash_part`,
      [cache, hashPart, cache, limit, cache],
    );
    return {
      paths: row?.paths ?? 0,
      narBytes: row?.nar_bytes ?? 0,
      fileBytes: row?.file_bytes ?? 0,
      complete: (row?.walked ?? 0) < limit,
    };
  }

  async tokensPage(cache: string | undefined, before: { createdAt: number; id: string } | undefined, limit: number): Promise<TokenRecord[]> {
    const conditions: string[] = [];
    const params: SqlValue[] = [];
    if (cache !== undefined) {
      conditions.push('cache = ?');
      params.push(cache);
    }
    if (before !== undefined) {
      conditions.push('(created_at < ? OR (created_at = ? AND id < ?))');
      params.push(before.createdAt, before.createdAt, before.id);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const rows = await this.#db.all<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens ${where} ORDER BY created_at DESC, id DESC LIMIT ?`, [
      ...params,
      limit,
    ]);
    return rows.map(tokenFromRow);
  }

  async tokenById(id: string): Promise<TokenRecord | undefined> {
    const row = await this.#db.get<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ?`, [id]);
    return row && tokenFromRow(row);
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
