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
  /** Garbage collection keeps paths accessed within this many ms (and their closures); null: no retention limit. */
  readonly retentionMs: number | null;
  /** Garbage collection evicts least recently used paths while the cache's NARs take more bytes; null: no quota. */
  readonly maxSize: number | null;
  /** Incremented whenever paths are deleted: in-process narinfo caches compare it to drop what they hold. */
  readonly generation: number;
}

/** The cache settings that can be changed after creation. */
export type CachePatch = Partial<Pick<CacheRecord, 'public' | 'priority' | 'compression' | 'mirror' | 'retentionMs' | 'maxSize'>>;

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
  /** The upstream cache URL it was fetched from by the mirror; absent for uploads. */
  readonly upstream?: string;
}

/** A path verified upstream by the mirror, its NAR not fetched yet. */
export interface MirroredNarInfo {
  readonly cache: string;
  readonly hashPart: string;
  /** larder's NAR file name the narinfo's URL names: `<fileHash>.nar.xz`. */
  readonly fileName: string;
  /** The upstream cache's URL. */
  readonly upstream: string;
  /** Where the NAR is fetched from: absolute. */
  readonly narUrl: string;
  /** The narinfo larder serves for the path. */
  readonly narinfo: string;
  readonly fetchedAt: number;
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

/** A named pin: garbage collection keeps the path's whole closure whatever its age. */
export interface PinRecord {
  readonly cache: string;
  readonly name: string;
  readonly hashPart: string;
  /** Store path basename `<hash>-<name>`. */
  readonly base: string;
  readonly createdAt: number;
}

/** One path as garbage collection plans with it. */
export interface PathFacts {
  readonly hashPart: string;
  readonly fileHash: string;
  readonly narSize: number;
  /** Bytes of the stored (compressed) NAR file; 0 when its NAR record is missing. */
  readonly fileSize: number;
  /** The last recorded access; the creation counts as one. */
  readonly accessedAt: number;
}

/** `hashPart` refers to `refHashPart`. */
export interface ReferenceRow {
  readonly hashPart: string;
  readonly refHashPart: string;
}

/** What must hold, inside the transaction that makes a path visible. */
export interface PathRequirements {
  /** The path's NAR is recorded and not being deleted. */
  readonly nar?: boolean;
  /** Hash parts that must be in the cache (the path's own is ignored). */
  readonly references?: readonly string[];
}

/** A path garbage collection means to delete. */
export interface DeletionCandidate {
  readonly hashPart: string;
  /** The access time the plan saw: a path accessed since is spared. Absent: no such check. */
  readonly accessedAt?: number;
}

export type SpareReason = 'absent' | 'accessed' | 'pinned' | 'referenced';

export interface SparedPath {
  readonly hashPart: string;
  readonly reason: SpareReason;
  /** The pin's name ('pinned') or the referrer's hash part ('referenced'). */
  readonly by?: string;
}

export interface DeletedPath {
  readonly hashPart: string;
  readonly base: string;
  readonly fileHash: string;
  readonly narSize: number;
}

export interface PathDeletion {
  readonly deleted: readonly DeletedPath[];
  readonly spared: readonly SparedPath[];
}

/** A NAR claimed for deletion: its record counts as absent until dropped. */
export interface NarClaim {
  readonly fileHash: string;
  readonly url: string;
  readonly fileSize: number;
}

export interface NarClaimRules {
  /** Only NARs recorded (or re-uploaded) before this time, ms. */
  readonly createdBefore: number;
  /** NARs claimed before this time are claimed again (their deleter died). */
  readonly staleClaimBefore: number;
  /** The claim's time. */
  readonly at: number;
}

/** Usage of one cache counted in memory and written in one batch (migration 6); see services/access-log.ts. */
export interface UsageBatch {
  /** The UTC day the counts belong to: ms at midnight. */
  readonly day: number;
  readonly narinfoHits: number;
  readonly narinfoMisses: number;
  readonly narDownloads: number;
  /** NAR file hash → completed downloads, added to the downloads of the paths that use it. */
  readonly downloadsByNar: ReadonlyMap<string, number>;
}

/** How big a cache is: its paths and the bytes of their NARs. */
export interface CacheTotals {
  readonly paths: number;
  /** Stored (compressed) bytes. */
  readonly fileBytes: number;
  /** Uncompressed NAR bytes. */
  readonly narBytes: number;
}

/** One UTC day of a cache's counted usage, and the last sample of its size taken that day (null when none was). */
export interface UsageDay {
  readonly day: number;
  readonly narinfoHits: number;
  readonly narinfoMisses: number;
  readonly narDownloads: number;
  readonly totals: CacheTotals | null;
}

/** A path as the dashboard lists it. */
export interface PathSummary {
  readonly hashPart: string;
  readonly base: string;
  readonly narSize: number;
  /** Bytes of the stored NAR file; 0 when its record is missing. */
  readonly fileSize: number;
  readonly createdAt: number;
  /** The last recorded access; the creation counts as one. */
  readonly accessedAt: number;
  /** Completed NAR downloads counted so far. */
  readonly downloads: number;
}

export interface ClosureSize {
  /** Paths of the closure present in the cache, the path itself included. */
  readonly paths: number;
  readonly narBytes: number;
  readonly fileBytes: number;
  /** False when the walk stopped at its limit: the closure is at least this big. */
  readonly complete: boolean;
}

/** What a cache holds, for metrics. */
export interface CacheStats {
  readonly cache: string;
  /** Store paths it serves. */
  readonly paths: number;
  /** NAR files it stores (a shared one once), those still waiting for their narinfo included. */
  readonly nars: number;
  /** Their compressed bytes: what the cache takes in the blob store. */
  readonly narBytes: number;
}

export interface CacheIndex {
  createCache(cache: CacheRecord): Promise<void>;
  getCache(name: string): Promise<CacheRecord | undefined>;
  listCaches(): Promise<CacheRecord[]>;
  /** Every cache's counts, in one read (no writes): what metrics show. */
  cacheStats(): Promise<CacheStats[]>;
  updateCache(name: string, patch: CachePatch): Promise<CacheRecord | undefined>;
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

  /** The NAR's record; undefined when absent or being deleted. */
  getNar(cache: string, fileHash: string): Promise<NarRecord | undefined>;
  /**
   * getNar for a re-upload of a stored NAR: also moves its createdAt to `at` (when later), so that
   * garbage collection takes it for an upload in flight rather than an orphan.
   */
  touchNar(cache: string, fileHash: string, at: number): Promise<NarRecord | undefined>;
  /** Whether garbage collection is deleting this NAR now (its file must not be written meanwhile). */
  narDeleting(cache: string, fileHash: string): Promise<boolean>;
  /** Records a stored NAR; a second record of the same (cache, fileHash) is a no-op. */
  putNar(nar: NarRecord): Promise<void>;

  getPath(cache: string, hashPart: string): Promise<PathRecord | undefined>;
  /**
   * Makes a path visible with its references in one transaction; false if it already existed.
   * With `requirements`, the NAR and the references are checked (and locked against deletion) in
   * that transaction: IndexPreconditionError when one is missing, and nothing changes.
   */
  putPath(path: PathRecord, requirements?: PathRequirements): Promise<boolean>;
  /** Which of these hash parts the cache holds. */
  presentPaths(cache: string, hashParts: readonly string[]): Promise<Set<string>>;
  /** Store path basenames of those of these hash parts the cache holds. */
  pathBases(cache: string, hashParts: readonly string[]): Promise<Map<string, string>>;
  /** The references to these hash parts from paths of the cache, self-references left out. */
  referrers(cache: string, hashParts: readonly string[]): Promise<ReferenceRow[]>;

  /** Records accesses: each path's last access becomes `at` unless it is later already. */
  touchPaths(cache: string, hashParts: readonly string[], at: number): Promise<void>;
  /** touchPaths for the paths whose NAR is one of these files. */
  touchPathsByNar(cache: string, fileHashes: readonly string[], at: number): Promise<void>;

  /** Sets pin `name` to the path (replacing the pin of that name); IndexPreconditionError when the path is absent. */
  putPin(cache: string, name: string, hashPart: string, at: number): Promise<PinRecord>;
  /** The cache's pins, by name. */
  listPins(cache: string): Promise<PinRecord[]>;
  deletePin(cache: string, name: string): Promise<boolean>;

  // Garbage collection: pages of facts to plan with (keyset pagination, bounded memory), then
  // deletions that re-check, in their own transaction, what may have changed since the plan.
  /** Up to `limit` paths after hash part `after` ('' for the first page), by hash part. */
  pathFactsPage(cache: string, after: string, limit: number): Promise<PathFacts[]>;
  /** Up to `limit` references after `after` (undefined for the first page), by hash part then reference. */
  referencesPage(cache: string, after: ReferenceRow | undefined, limit: number): Promise<ReferenceRow[]>;
  /** File hashes of NARs that several of the cache's paths share. */
  sharedNars(cache: string): Promise<string[]>;
  /**
   * Deletes these paths (their references go with them) in one transaction, except those that
   * are gone, accessed since the plan, pinned, or referred to by a path not deleted with them
   * (and what those refer to among the candidates): those are spared. Bumps the cache's generation.
   * With `allOrNothing`, deletes nothing when anything would be spared.
   */
  deletePaths(cache: string, candidates: readonly DeletionCandidate[], options?: { allOrNothing?: boolean }): Promise<PathDeletion>;
  /** File hashes of NARs no path uses, recorded before `rules.createdBefore`, or claimed before `rules.staleClaimBefore`. */
  orphanNarsPage(cache: string, rules: NarClaimRules, after: string, limit: number): Promise<NarClaim[]>;
  /** Claims those of these NARs that no path uses and that `rules` allow, for deleting their files. */
  claimNars(cache: string, fileHashes: readonly string[], rules: NarClaimRules): Promise<NarClaim[]>;
  /** Deletes the records of claimed NARs (whose files are gone); returns how many. */
  dropClaimedNars(cache: string, fileHashes: readonly string[]): Promise<number>;
  /** Which of these NARs have a record (claimed or not). */
  presentNars(cache: string, fileHashes: readonly string[]): Promise<Set<string>>;

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

  putMirroredNarInfo(entry: MirroredNarInfo): Promise<void>;
  getMirroredNarInfo(cache: string, hashPart: string): Promise<MirroredNarInfo | undefined>;
  /** The mirrored narinfos whose URL names this NAR file (paths with equal contents share one). */
  mirroredNarInfosByFile(cache: string, fileName: string): Promise<MirroredNarInfo[]>;
  deleteMirroredNarInfo(cache: string, hashPart: string): Promise<void>;
  /** Forgets mirrored narinfos fetched before `before`; how many. */
  expireMirroredNarInfos(cache: string, before: number): Promise<number>;

  /**
   * Takes the lease `name` for `holder` (a replica's unique id) for `ttlMs` from now, for a job
   * that must run on one replica at a time. True when `holder` has it now: it was free or
   * expired, or `holder` already had it and this renews it. False while another holds it.
   * Expiry is by the clocks of the replicas, so a TTL must dwarf their skew.
   */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up at once; false when `holder` did not hold it. */
  releaseLease(name: string, holder: string): Promise<boolean>;

  // The dashboard: usage counters written in batches, and bounded reads (migration 6).
  /** Adds one batch of a cache's counted usage in one transaction; nothing when the cache is gone. */
  recordUsage(cache: string, usage: UsageBatch): Promise<void>;
  /** Records the cache's size on `day`, replacing an earlier sample of that day; nothing when the cache is gone. */
  recordTotalsSample(cache: string, day: number, totals: CacheTotals): Promise<void>;
  /** The cache's size now (reads every path row of the cache: callers cache it). */
  cacheTotals(cache: string): Promise<CacheTotals>;
  /** The days from `sinceDay` on that have usage or a size sample, oldest first, at most `limit`. */
  usageHistory(cache: string, sinceDay: number, limit: number): Promise<UsageDay[]>;
  /** The most downloaded paths (at least one download), most first. */
  topDownloadedPaths(cache: string, limit: number): Promise<PathSummary[]>;
  /** The most recently added paths, newest first. */
  recentPaths(cache: string, limit: number): Promise<PathSummary[]>;
  /**
   * Paths whose hash part starts with `hashPrefix` (when given), or whose name (after the hash)
   * contains `nameNeedle` (lower case; when given, matched case-insensitively), by hash part after `after`.
   */
  searchPaths(cache: string, query: { hashPrefix?: string; nameNeedle?: string }, after: string, limit: number): Promise<PathSummary[]>;
  /** One path as listed; undefined when absent. */
  pathSummary(cache: string, hashPart: string): Promise<PathSummary | undefined>;
  /** Paths of the cache that refer to `hashPart` (itself left out), by hash part after `after`. */
  referringPaths(cache: string, hashPart: string, after: string, limit: number): Promise<PathSummary[]>;
  /**
   * The size of a path's closure within the cache (zero paths when the path is absent), walking at
   * most `limit` paths: beyond that, what was seen, marked incomplete.
   */
  closureSize(cache: string, hashPart: string, limit: number): Promise<ClosureSize>;
  /** Tokens, newest first, of one cache or (undefined) all; a page ends before `before` (createdAt, id) when given. */
  tokensPage(cache: string | undefined, before: { createdAt: number; id: string } | undefined, limit: number): Promise<TokenRecord[]>;
  tokenById(id: string): Promise<TokenRecord | undefined>;

  close(): Promise<void>;
}

/** The index cannot answer now (locked, disk or connection failure): a 503, never a 404. */
export class IndexUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IndexUnavailableError';
  }
}

/** What a write required was missing when its transaction ran: a NAR, references, a path to pin. */
export class IndexPreconditionError extends Error {
  readonly missingNar: boolean;
  readonly missingPaths: readonly string[];
  constructor(message: string, missing: { nar?: boolean; paths?: readonly string[] }) {
    super(message);
    this.name = 'IndexPreconditionError';
    this.missingNar = missing.nar ?? false;
    this.missingPaths = missing.paths ?? [];
  }
}

/** A unique key already exists (cache name, key name, token id). */
export class IndexConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexConflictError';
  }
}
