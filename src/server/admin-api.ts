// The JSON admin API under /api/v1/: caches, their keys, upstreams and pins,
// garbage collection and path deletion, tokens, and the batched `missing`
// query the push client uses. The CLI is a thin client of it.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheRecord, KeyRecord, Permission, PinRecord, TokenRecord, UpstreamRecord } from '../index/cache-index.ts';
import { isHashPart, parseStorePath } from '../nix/store-path.ts';
import {
  cacheNameProblem,
  createCache,
  retireKey,
  rotateKey,
  setUpstreams,
  trustedPublicKeys,
  updateCache,
  type CacheSettings,
  type GcPolicyPatch,
} from '../services/cache-admin.ts';
import { deletePath, runGc } from '../services/gc.ts';
import type { Larder } from '../services/larder.ts';
import { deletePin, setPin } from '../services/pins.ts';
import { Rejection } from '../services/rejection.ts';
import { grants, isPermission, isServerAdmin } from '../services/tokens.ts';
import { formatDurationValue, formatSizeValue, parseDurationValue, parseSizeValue } from '../services/units.ts';
import { principalOf, requirePermission, unauthorized } from './access.ts';
import { HttpError, REJECTION_STATUS } from './http-error.ts';
import { readJson } from './request-body.ts';

const JSON_LIMIT = 16 * 1024 * 1024;
const MAX_EXPIRY_SECONDS = 100 * 365 * 86_400;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** How long a slow answer may keep the client waiting for headers, and then between two blank lines. */
const SLOW_ANSWER_MS = 10_000;

/**
 * Answers with `work`'s result like sendJson when it comes within seconds (so that a refusal
 * keeps its status code); otherwise starts a 200 at once and sends a blank line every few
 * seconds until the JSON comes (clients time out waiting for headers, and proxies on idle
 * connections, long before a garbage collection of a large cache ends). A failure after that
 * is sent as `{"error": …, "status": …}`. Leading whitespace is valid JSON.
 */
export async function sendJsonWhenDone(res: ServerResponse, work: Promise<unknown>, slowMs = SLOW_ANSWER_MS): Promise<void> {
  const outcome = work.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const early = await Promise.race([outcome, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), slowMs)))]);
  clearTimeout(timer);
  if (early) {
    if ('error' in early) throw early.error;
    return sendJson(res, 200, early.value);
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.write('\n');
  const keepAlive = setInterval(() => void (res.destroyed || res.write('\n')), slowMs);
  try {
    const done = await outcome;
    if ('error' in done) {
      const { status, message } = describeFailure(done.error);
      res.end(JSON.stringify({ error: message, status }));
    } else {
      res.end(JSON.stringify(done.value));
    }
  } finally {
    clearInterval(keepAlive);
  }
}

function describeFailure(error: unknown): { status: number; message: string } {
  if (error instanceof HttpError) return { status: error.status, message: error.message };
  if (error instanceof Rejection) return { status: REJECTION_STATUS[error.kind], message: error.message };
  const e = error as Error | undefined;
  if (e?.name === 'IndexUnavailableError' || e?.name === 'StorageUnavailableError') return { status: 503, message: e.message };
  process.stderr.write(`larder: internal error in a long request: ${e?.stack ?? String(error)}\n`);
  return { status: 500, message: 'internal error' };
}

function upstreamJson(upstream: UpstreamRecord) {
  return { url: upstream.url, publicKeys: upstream.publicKeys, priority: upstream.priority };
}

async function cacheJson(larder: Larder, cache: CacheRecord) {
  return {
    name: cache.name,
    public: cache.public,
    priority: cache.priority,
    compression: cache.compression,
    mirror: cache.mirror,
    createdAt: cache.createdAt,
    retention: cache.retentionMs === null ? null : formatDurationValue(cache.retentionMs),
    maxSize: cache.maxSize === null ? null : formatSizeValue(cache.maxSize),
    publicKeys: await trustedPublicKeys(larder, cache.name),
    upstreams: (await larder.index.listUpstreams(cache.name)).map(upstreamJson),
  };
}

function pinJson(larder: Larder, pin: PinRecord) {
  return { name: pin.name, storePath: `${larder.storeDir}/${pin.base}`, createdAt: pin.createdAt };
}

/** `retention` ("30d") and `maxSize` ("200GiB" or bytes) of a PATCH; null removes the limit. */
function gcPolicyOf(body: Body): GcPolicyPatch {
  const policy: { retentionMs?: number | null; maxSize?: number | null } = {};
  if (body.retention !== undefined) {
    const ms = body.retention === null ? null : parseDurationValue(body.retention);
    if (ms === undefined) throw new HttpError(400, `field 'retention': expected a duration such as "30d" or "12h", or null, got ${JSON.stringify(body.retention)}`);
    policy.retentionMs = ms;
  }
  if (body.maxSize !== undefined) {
    const bytes = body.maxSize === null ? null : parseSizeValue(body.maxSize);
    if (bytes === undefined) throw new HttpError(400, `field 'maxSize': expected a size such as "200GiB" or a number of bytes, or null, got ${JSON.stringify(body.maxSize)}`);
    policy.maxSize = bytes;
  }
  return policy;
}

function keyJson(key: KeyRecord) {
  return { name: key.name, publicKey: key.publicKey, state: key.state, createdAt: key.createdAt };
}

function tokenJson(token: TokenRecord) {
  return {
    id: token.id,
    label: token.label,
    cache: token.cache,
    permission: token.permission,
    createdAt: token.createdAt,
    expiresAt: token.expiresAt,
    revokedAt: token.revokedAt,
  };
}

const ROUTES = [
  'GET whoami',
  'GET caches',
  'POST caches',
  'GET caches/:cache',
  'PATCH caches/:cache',
  'DELETE caches/:cache',
  'POST caches/:cache/missing',
  'POST caches/:cache/gc',
  'DELETE caches/:cache/paths/:path',
  'GET caches/:cache/pins',
  'PUT caches/:cache/pins/:pin',
  'DELETE caches/:cache/pins/:pin',
  'GET caches/:cache/upstreams',
  'PUT caches/:cache/upstreams',
  'GET caches/:cache/keys',
  'POST caches/:cache/keys/rotate',
  'POST caches/:cache/keys/:key/retire',
  'POST tokens',
  'GET tokens',
  'DELETE tokens/:id',
].map((route) => {
  const [method, path] = route.split(' ') as [string, string];
  return { route, method, parts: path.split('/') };
});

/** The route a request matches, with its parameters (the patterns never overlap). */
function matchRoute(method: string, segments: readonly string[]): { route: string; params: Record<string, string> } {
  for (const { route, method: m, parts } of ROUTES) {
    if (m !== method || parts.length !== segments.length) continue;
    const params: Record<string, string> = {};
    if (parts.every((part, i) => (part.startsWith(':') ? ((params[part.slice(1)] = segments[i]!), true) : part === segments[i]))) {
      return { route, params };
    }
  }
  return { route: 'none', params: {} };
}

type Body = Record<string, unknown>;

function field<T>(body: Body, name: string, type: 'string' | 'boolean' | 'number', required: true): T;
function field<T>(body: Body, name: string, type: 'string' | 'boolean' | 'number', required?: false): T | undefined;
function field<T>(body: Body, name: string, type: 'string' | 'boolean' | 'number', required = false): T | undefined {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new HttpError(400, `field '${name}' is required`);
    return undefined;
  }
  if (typeof value !== type) throw new HttpError(400, `field '${name}': expected a ${type}, got ${JSON.stringify(value)}`);
  return value as T;
}

async function objectBody(req: IncomingMessage): Promise<Body> {
  const body = await readJson(req, JSON_LIMIT);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body: expected a JSON object');
  return body as Body;
}

function settingsOf(body: Body): Partial<CacheSettings> {
  const settings: { public?: boolean; priority?: number; compression?: string; mirror?: boolean } = {};
  const isPublic = field<boolean>(body, 'public', 'boolean');
  const priority = field<number>(body, 'priority', 'number');
  const compression = field<string>(body, 'compression', 'string');
  const mirror = field<boolean>(body, 'mirror', 'boolean');
  if (isPublic !== undefined) settings.public = isPublic;
  if (priority !== undefined) settings.priority = priority;
  if (compression !== undefined) settings.compression = compression;
  if (mirror !== undefined) settings.mirror = mirror;
  return settings;
}

export class AdminApi {
  private readonly larder: Larder;
  private readonly onCacheChanged: (name: string) => void;

  constructor(larder: Larder, onCacheChanged: (name: string) => void) {
    this.larder = larder;
    this.onCacheChanged = onCacheChanged;
  }

  async handle(req: IncomingMessage, res: ServerResponse, segments: readonly string[]): Promise<void> {
    const { larder } = this;
    const method = req.method ?? 'GET';
    const principal = await principalOf(larder.tokens, req);
    const { route, params } = matchRoute(method, segments);
    const cacheName = params.cache;

    const needCache = async (permission: Permission): Promise<CacheRecord> => {
      const cache = await larder.index.getCache(cacheName!);
      if (!cache) throw new HttpError(404, `no cache '${cacheName}'`);
      requirePermission(principal, cache, permission);
      return cache;
    };
    const needServerAdmin = () => {
      if (!principal) throw unauthorized('a server-admin token is needed');
      if (!isServerAdmin(principal)) throw new HttpError(403, 'this needs a server-admin token');
    };

    switch (route) {
      case 'GET whoami':
        if (!principal) throw unauthorized('no token presented');
        return sendJson(res, 200, tokenJson(principal));
      case 'GET caches': {
        if (!principal) throw unauthorized('a token is needed to list caches');
        const caches = (await larder.index.listCaches()).filter((c) => isServerAdmin(principal) || grants(principal, c.name, 'read'));
        return sendJson(res, 200, await Promise.all(caches.map((c) => cacheJson(larder, c))));
      }
      case 'POST caches': {
        needServerAdmin();
        const body = await objectBody(req);
        const cache = await createCache(larder, field<string>(body, 'name', 'string', true), settingsOf(body));
        return sendJson(res, 201, await cacheJson(larder, cache));
      }
      case 'GET caches/:cache': {
        const cache = await needCache('read');
        return sendJson(res, 200, await cacheJson(larder, cache));
      }
      case 'PATCH caches/:cache': {
        await needCache('admin');
        const body = await objectBody(req);
        const cache = await updateCache(larder, cacheName!, { ...settingsOf(body), ...gcPolicyOf(body) });
        this.onCacheChanged(cache.name);
        return sendJson(res, 200, await cacheJson(larder, cache));
      }
      case 'DELETE caches/:cache': {
        needServerAdmin();
        await needCache('admin');
        await larder.index.deleteCache(cacheName!);
        this.onCacheChanged(cacheName!);
        for await (const key of larder.store.list(cacheName!)) await larder.store.delete(key);
        return sendJson(res, 200, { deleted: cacheName });
      }
      case 'POST caches/:cache/missing': {
        await needCache('read');
        const paths = (await objectBody(req)).paths;
        if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string')) {
          throw new HttpError(400, "field 'paths': expected an array of store paths");
        }
        const hashParts = paths.map((p, i) => {
          try {
            return parseStorePath(p, larder.storeDir).hashPart;
          } catch (error) {
            throw new HttpError(400, `field 'paths'[${i}]: ${(error as Error).message}`);
          }
        });
        const present = await larder.index.presentPaths(cacheName!, hashParts);
        // A push finding a path present is an access of it.
        for (const hashPart of present) larder.accesses.path(cacheName!, hashPart);
        return sendJson(res, 200, { missing: paths.filter((_, i) => !present.has(hashParts[i]!)) });
      }
      case 'POST caches/:cache/gc': {
        await needCache('admin');
        const body = await objectBody(req);
        const dryRun = field<boolean>(body, 'dryRun', 'boolean') ?? false;
        const list = field<boolean>(body, 'list', 'boolean') ?? false;
        return sendJsonWhenDone(res, runGc(larder, cacheName!, { dryRun, list }));
      }
      case 'DELETE caches/:cache/paths/:path': {
        await needCache('admin');
        // A hash part, or a store path's basename (percent-encoded slashes are refused before here).
        const hashPart = params.path!.slice(0, 32);
        if (!isHashPart(hashPart) || (params.path!.length > 32 && params.path![32] !== '-')) {
          throw new HttpError(400, `'${params.path}' is neither a hash part nor a store path basename`);
        }
        const withDependents = new URL(req.url ?? '/', 'http://x').searchParams.get('withDependents') === 'true';
        return sendJson(res, 200, await deletePath(larder, cacheName!, hashPart, { withDependents }));
      }
      case 'GET caches/:cache/pins': {
        await needCache('read');
        return sendJson(res, 200, (await larder.index.listPins(cacheName!)).map((pin) => pinJson(larder, pin)));
      }
      case 'PUT caches/:cache/pins/:pin': {
        // Write, not admin: `larder push --pin` moves a pin with the token it pushes with.
        await needCache('write');
        const storePath = field<string>(await objectBody(req), 'storePath', 'string', true);
        const pin = await setPin(larder, cacheName!, params.pin!, storePath);
        return sendJson(res, 200, pinJson(larder, pin));
      }
      case 'DELETE caches/:cache/pins/:pin': {
        await needCache('write');
        await deletePin(larder, cacheName!, params.pin!);
        return sendJson(res, 200, { deleted: params.pin });
      }
      case 'GET caches/:cache/upstreams': {
        await needCache('read');
        return sendJson(res, 200, (await larder.index.listUpstreams(cacheName!)).map(upstreamJson));
      }
      case 'PUT caches/:cache/upstreams': {
        await needCache('admin');
        const upstreams = await setUpstreams(larder, cacheName!, await readJson(req, JSON_LIMIT));
        return sendJson(res, 200, upstreams.map(upstreamJson));
      }
      case 'GET caches/:cache/keys': {
        await needCache('admin');
        return sendJson(res, 200, (await larder.index.listKeys(cacheName!)).map(keyJson));
      }
      case 'POST caches/:cache/keys/rotate': {
        await needCache('admin');
        return sendJson(res, 201, keyJson(await rotateKey(larder, cacheName!)));
      }
      case 'POST caches/:cache/keys/:key/retire': {
        await needCache('admin');
        await retireKey(larder, cacheName!, params.key!);
        return sendJson(res, 200, { retired: params.key });
      }
      case 'POST tokens':
        return this.createToken(req, res, principal);
      case 'GET tokens': {
        if (!principal) throw unauthorized('a token is needed');
        const cache = new URL(req.url ?? '/', 'http://x').searchParams.get('cache');
        const problem = cache === null ? undefined : cacheNameProblem(cache);
        if (problem) throw new HttpError(400, `?cache: ${problem}`);
        if (!isServerAdmin(principal) && (cache === null || !grants(principal, cache, 'admin'))) {
          throw new HttpError(403, 'listing tokens needs a server-admin token, or ?cache=<name> with an admin token of that cache');
        }
        return sendJson(res, 200, (await larder.index.listTokens(cache ?? undefined)).map(tokenJson));
      }
      case 'DELETE tokens/:id': {
        if (!principal) throw unauthorized('a token is needed');
        const id = params.id!;
        const token = (await larder.index.listTokens()).find((t) => t.id === id);
        if (!token) throw new HttpError(404, `no token '${id}'`);
        if (!isServerAdmin(principal) && !(token.cache !== null && grants(principal, token.cache, 'admin'))) {
          throw new HttpError(403, 'revoking this token needs a server-admin token or an admin token of its cache');
        }
        if (!(await larder.tokens.revoke(id))) throw new HttpError(409, `token '${id}' is already revoked`);
        return sendJson(res, 200, { revoked: id });
      }
      default:
        throw new HttpError(404, `no API route ${method} /api/v1/${segments.join('/')}`);
    }
  }

  private async createToken(req: IncomingMessage, res: ServerResponse, principal: TokenRecord | undefined): Promise<void> {
    if (!principal) throw unauthorized('a token is needed to create tokens');
    const body = await objectBody(req);
    const cache = field<string>(body, 'cache', 'string') ?? null;
    const permission = field<string>(body, 'permission', 'string', true);
    if (!isPermission(permission)) throw new HttpError(400, `field 'permission': expected read, write or admin, got '${permission}'`);
    const allowed = isServerAdmin(principal) || (cache !== null && grants(principal, cache, 'admin'));
    if (!allowed) throw new HttpError(403, 'creating this token needs a server-admin token or an admin token of the cache');
    const expiresIn = field<number>(body, 'expiresInSeconds', 'number');
    // Bounded and rounded: the index stores whole milliseconds (PostgreSQL refuses 1e+303 or a fraction with a 500).
    if (expiresIn !== undefined && !(expiresIn > 0 && expiresIn <= MAX_EXPIRY_SECONDS)) {
      throw new HttpError(400, `field 'expiresInSeconds': expected a positive number of seconds, at most ${MAX_EXPIRY_SECONDS} (100 years)`);
    }
    const label = field<string>(body, 'label', 'string') ?? '';
    try {
      const { token, record } = await this.larder.tokens.issue({
        cache,
        permission,
        label,
        expiresAt: expiresIn === undefined ? null : Date.now() + Math.round(expiresIn * 1000),
      });
      return sendJson(res, 201, { ...tokenJson(record), token });
    } catch (error) {
      if (error instanceof Rejection && error.kind === 'conflict') throw new HttpError(404, error.message);
      throw error;
    }
  }
}
