// A thin client of larder's JSON admin API under /api/v1/. It mirrors the wire
// format rather than importing the server's types, so that it stays a
// client: what it knows of the server is what the server sends.

import type { GcReport } from '../services/gc.ts';

export type Permission = 'read' | 'write' | 'admin';

export interface CacheInfo {
  readonly name: string;
  readonly public: boolean;
  readonly priority: number;
  readonly compression: string;
  readonly createdAt: number;
  /** Garbage collection keeps paths accessed within this period ("30d"); null: no limit. */
  readonly retention?: string | null;
  /** Garbage collection's quota ("200GiB"); null: none. */
  readonly maxSize?: string | null;
  /** The keys clients should trust: active and still-published ones. */
  readonly publicKeys: string[];
  /** Whether paths the cache lacks are fetched from its upstreams (a pull-through proxy). */
  readonly mirror?: boolean;
  readonly upstreams?: UpstreamInfo[];
}

export interface UpstreamInfo {
  readonly url: string;
  readonly publicKeys: string[];
  /** Lower is asked first, as in nix-cache-info. */
  readonly priority: number;
}

export interface CacheSettings {
  readonly public?: boolean;
  readonly priority?: number;
  readonly compression?: string;
  readonly mirror?: boolean;
  /** null removes the limit. */
  readonly retention?: string | null;
  readonly maxSize?: string | null;
}

export interface PinInfo {
  readonly name: string;
  readonly storePath: string;
  readonly createdAt: number;
}

/** What `POST caches/<c>/gc` answers: the server's report, as JSON. */
export type GcReportInfo = GcReport;

export interface PathDeletionInfo {
  readonly deleted: readonly string[];
  readonly nars: number;
  readonly bytes: number;
}

export interface KeyInfo {
  readonly name: string;
  readonly publicKey: string;
  readonly state: 'active' | 'published' | 'retired';
  readonly createdAt: number;
}

export interface TokenInfo {
  readonly id: string;
  readonly label: string;
  /** null: a server-admin token. */
  readonly cache: string | null;
  readonly permission: Permission;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
}

/** A freshly issued token: the secret is in `token`, and the server never shows it again. */
export interface IssuedToken extends TokenInfo {
  readonly token: string;
}

export interface TokenRequest {
  readonly cache?: string;
  readonly permission: Permission;
  readonly label?: string;
  readonly expiresInSeconds?: number;
}

/** The server answered, but not with success; `message` is the server's own. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** No HTTP answer at all: refused, unresolvable, reset. */
export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}

export class ApiClient {
  /** The server's base URL, without a trailing slash. */
  readonly server: string;
  private readonly token: string | undefined;

  constructor(server: string, token: string | undefined) {
    this.server = server.replace(/\/+$/, '');
    this.token = token;
  }

  whoami(): Promise<TokenInfo> {
    return this.request('GET', 'whoami');
  }

  listCaches(): Promise<CacheInfo[]> {
    return this.request('GET', 'caches');
  }

  createCache(name: string, settings: CacheSettings = {}): Promise<CacheInfo> {
    return this.request('POST', 'caches', { name, ...settings });
  }

  showCache(name: string): Promise<CacheInfo> {
    return this.request('GET', `caches/${encodeURIComponent(name)}`);
  }

  updateCache(name: string, settings: CacheSettings): Promise<CacheInfo> {
    return this.request('PATCH', `caches/${encodeURIComponent(name)}`, settings);
  }

  deleteCache(name: string): Promise<{ deleted: string }> {
    return this.request('DELETE', `caches/${encodeURIComponent(name)}`);
  }

  /** Of `paths` (full store paths), those the cache does not hold. */
  missing(cache: string, paths: readonly string[]): Promise<{ missing: string[] }> {
    return this.request('POST', `caches/${encodeURIComponent(cache)}/missing`, { paths });
  }

  listUpstreams(cache: string): Promise<UpstreamInfo[]> {
    return this.request('GET', `caches/${encodeURIComponent(cache)}/upstreams`);
  }

  /** Replaces the cache's upstream list. */
  setUpstreams(cache: string, upstreams: readonly UpstreamInfo[]): Promise<UpstreamInfo[]> {
    return this.request('PUT', `caches/${encodeURIComponent(cache)}/upstreams`, upstreams);
  }

  listPins(cache: string): Promise<PinInfo[]> {
    return this.request('GET', `caches/${encodeURIComponent(cache)}/pins`);
  }

  /** Sets pin `name` to a store path of the cache, replacing the pin of that name. */
  setPin(cache: string, name: string, storePath: string): Promise<PinInfo> {
    return this.request('PUT', `caches/${encodeURIComponent(cache)}/pins/${encodeURIComponent(name)}`, { storePath });
  }

  deletePin(cache: string, name: string): Promise<{ deleted: string }> {
    return this.request('DELETE', `caches/${encodeURIComponent(cache)}/pins/${encodeURIComponent(name)}`);
  }

  /** Runs garbage collection of a cache (or, with dryRun, reports what it would delete). */
  async gc(cache: string, options: { dryRun?: boolean; list?: boolean } = {}): Promise<GcReportInfo> {
    // A long run answers 200 at once and says how it ended in the body.
    const report = await this.request<GcReportInfo | { error: string; status: number }>('POST', `caches/${encodeURIComponent(cache)}/gc`, options);
    if ('error' in report) throw new ApiError(report.status, report.error);
    return report;
  }

  /** Deletes one path (by basename or hash part), with `withDependents` the paths referring to it too. */
  deletePath(cache: string, path: string, withDependents = false): Promise<PathDeletionInfo> {
    const query = withDependents ? '?withDependents=true' : '';
    return this.request('DELETE', `caches/${encodeURIComponent(cache)}/paths/${encodeURIComponent(path)}${query}`);
  }

  listKeys(cache: string): Promise<KeyInfo[]> {
    return this.request('GET', `caches/${encodeURIComponent(cache)}/keys`);
  }

  rotateKey(cache: string): Promise<KeyInfo> {
    return this.request('POST', `caches/${encodeURIComponent(cache)}/keys/rotate`);
  }

  retireKey(cache: string, key: string): Promise<{ retired: string }> {
    return this.request('POST', `caches/${encodeURIComponent(cache)}/keys/${encodeURIComponent(key)}/retire`);
  }

  createToken(request: TokenRequest): Promise<IssuedToken> {
    return this.request('POST', 'tokens', request);
  }

  /** All tokens (server admin), or those of one cache. */
  listTokens(cache?: string): Promise<TokenInfo[]> {
    return this.request('GET', cache === undefined ? 'tokens' : `tokens?cache=${encodeURIComponent(cache)}`);
  }

  revokeToken(id: string): Promise<{ revoked: string }> {
    return this.request('DELETE', `tokens/${encodeURIComponent(id)}`);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.server}/api/v1/${path}`;
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.token !== undefined) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
    } catch (error) {
      throw new UnreachableError(`cannot reach larder at ${this.server}: ${networkReason(error)}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // Something other than larder answered: a proxy's error page, a wrong URL.
      if (!res.ok) throw new ApiError(res.status, `HTTP ${res.status} ${res.statusText} from ${url}`);
      throw new ApiError(res.status, `${this.server} did not answer as a larder server (no JSON from ${url})`);
    }
    if (!res.ok) {
      const message = (json as { error?: unknown } | null)?.error;
      throw new ApiError(res.status, typeof message === 'string' ? message : `HTTP ${res.status} ${res.statusText} from ${url}`);
    }
    return json as T;
  }
}

/** fetch reports every network failure as "fetch failed"; the reason is in its cause. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause as (Error & { code?: string }) | undefined;
  if (cause?.code) return cause.code;
  // Node tries each address of a host name and aggregates the failures.
  if (cause instanceof AggregateError) {
    const first = cause.errors[0] as (Error & { code?: string }) | undefined;
    if (first?.code) return first.code;
  }
  return cause?.message ?? (error as Error).message;
}
