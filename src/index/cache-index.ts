// The index: everything larder knows about its caches apart from the blobs.
// One interface; the SQL behind it is written once and runs on node:sqlite
// (embedded) and PostgreSQL (scale-out). storage/ and index/ know no HTTP.

export type Permission = 'read' | 'write' | 'admin';

export interface CacheRecord {
  readonly name: string;
  /** Anyone may read a public cache; a private one needs a read token. */
  readonly public: boolean;
  /** nix-cache-info Priority: lower is tried first by clients. */
  readonly priority: number;
  /** Compression the push client should use for this cache: 'zstd', 'xz' or 'none'. */
  readonly compression: string;
  /** Serve the upstreams' paths through this cache (pull-through); stored, not yet acted on. */
  readonly mirror: boolean;
  readonly createdAt: number;
}

/** A binary cache whose paths a cache's uploads may refer to without holding them. */
export interface Upstream {
  /** Base URL, http(s), no trailing slash: `<url>/<hash>.narinfo` is asked. */
  readonly url: string;
  /** Nix public keys `name:base64`; an upstream narinfo counts only when signed by one. */
  readonly publicKeys: readonly string[];
  /** Lower is asked first, like nix-cache-info Priority. */
  readonly priority: number;
}

export interface UpstreamRecord extends Upstream {
  readonly cache: string;
}

/** A remembered answer to "does this upstream hold this path?". */
export interface PresenceAnswer {
  readonly hashPart: string;
  readonly present: boolean;
  readonly checkedAt: number;
}

export interface UpstreamPresence extends PresenceAnswer {
  readonly url: string;
}

/** active: signs new uploads; published: still offered to clients as trusted; retired: gone. */
export type KeyState = 'active' | 'published' | 'retired';

export interface KeyRecord {
  readonly cache: string;
  /** The key name, e.g. `main-1`; unique per cache. */
  readonly name: string;
  /** Nix secret key text `name:base64`. */
  readonly secretKey: string;
  /** Nix public key text `name:base64`. */
  readonly publicKey: string;
  readonly state: KeyState;
  readonly createdAt: number;
}

export interface TokenRecord {
  /** Public identifier, used to list and revoke; not a secret. */
  readonly id: string;
  /** sha256 hex of the token: the token itself is never stored. */
  readonly hash: string;
  readonly label: string;
  /** null with 'admin': a server-admin token. */
  readonly cache: string | null;
  readonly permission: Permission;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
}

export interface NarRecord {
  readonly cache: string;
  /** nix32 sha256 of the file as stored (compressed). */
  readonly fileHash: string;
  /** Location relative to the cache: `nar/<fileHash>.nar.zst`. */
  readonly url: string;
  readonly compression: string;
  readonly fileSize: number;
  /** `sha256:<nix32>` of the uncompressed NAR. */
  readonly narHash: string;
  readonly narSize: number;
  readonly createdAt: number;
}

export interface PathRecord {
  readonly cache: string;
  readonly hashPart: string;
  /** Store path basename `<hash>-<name>`. */
  readonly base: string;
  readonly fileHash: string;
  readonly narSize: number;
  /** Hash parts of the references, self included when the path refers to itself. */
  readonly references: readonly string[];
  /** The signed narinfo exactly as served. */
  readonly narinfo: string;
  readonly createdAt: number;
}

export interface CacheIndex {
  createCache(cache: CacheRecord): Promise<void>;
  getCache(name: string): Promise<CacheRecord | undefined>;
  listCaches(): Promise<CacheRecord[]>;
  updateCache(
    name: string,
    patch: Partial<Pick<CacheRecord, 'public' | 'priority' | 'compression' | 'mirror'>>,
  ): Promise<CacheRecord | undefined>;
  /** Deletes the cache and every row that belongs to it. */
  deleteCache(name: string): Promise<boolean>;

  addKey(key: KeyRecord): Promise<void>;
  listKeys(cache: string): Promise<KeyRecord[]>;
  setKeyState(cache: string, name: string, state: KeyState): Promise<boolean>;

  createToken(token: TokenRecord): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRecord | undefined>;
  /** All tokens, or those of one cache. */
  listTokens(cache?: string): Promise<TokenRecord[]>;
  /** Sets revokedAt; false when no such token or already revoked. */
  revokeToken(id: string, at: number): Promise<boolean>;

  getNar(cache: string, fileHash: string): Promise<NarRecord | undefined>;
  /** Records a stored NAR; a second record of the same (cache, fileHash) is a no-op. */
  putNar(nar: NarRecord): Promise<void>;

  getPath(cache: string, hashPart: string): Promise<PathRecord | undefined>;
  /** Makes a path visible with its references in one transaction; false if it already existed. */
  putPath(path: PathRecord): Promise<boolean>;
  /** Which of these hash parts the cache holds. */
  presentPaths(cache: string, hashParts: readonly string[]): Promise<Set<string>>;

  /** The cache's upstreams, by priority then URL. */
  listUpstreams(cache: string): Promise<UpstreamRecord[]>;
  /**
   * Replaces the cache's upstreams in one transaction. Presence answers survive only for an
   * upstream kept with the same URL and keys.
   */
  setUpstreams(cache: string, upstreams: readonly Upstream[]): Promise<void>;
  /** Remembered answers for these hash parts, from any of the cache's upstreams, fresh or not. */
  getUpstreamPresence(cache: string, hashParts: readonly string[]): Promise<UpstreamPresence[]>;
  /**
   * Remembers answers (replacing older ones), but only while `upstream` is still declared with
   * the same keys: an answer checked under keys that were replaced meanwhile is dropped.
   */
  recordUpstreamPresence(upstream: UpstreamRecord, answers: readonly PresenceAnswer[]): Promise<void>;

  /**
   * Takes the lease `name` for `holder` (a replica's unique id) for `ttlMs` from now, for a job
   * that must run on one replica at a time. True when `holder` has it now: it was free or
   * expired, or `holder` already had it and this renews it. False while another holds it.
   * Expiry is by the clocks of the replicas, so a TTL must dwarf their skew.
   */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up at once; false when `holder` did not hold it. */
  releaseLease(name: string, holder: string): Promise<boolean>;

  close(): Promise<void>;
}

/** The index cannot answer now (locked, disk or connection failure): a 503, never a 404. */
export class IndexUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IndexUnavailableError';
  }
}

/** A unique key already exists (cache name, key name, token id). */
export class IndexConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexConflictError';
  }
}
