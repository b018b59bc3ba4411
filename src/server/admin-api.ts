// The JSON admin API under /api/v1/: caches, their keys and upstreams, tokens,
// and the batched `missing` query the push client uses. The CLI is a thin client of it.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheRecord, KeyRecord, Permission, TokenRecord, UpstreamRecord } from '../index/cache-index.ts';
import { parseStorePath } from '../nix/store-path.ts';
import {
  createCache,
  retireKey,
  rotateKey,
  setUpstreams,
  trustedPublicKeys,
  updateCache,
  type CacheSettings,
} from '../services/cache-admin.ts';
import type { Larder } from '../services/larder.ts';
import { Rejection } from '../services/rejection.ts';
import { grants, isPermission, isServerAdmin } from '../services/tokens.ts';
import { principalOf, requirePermission, unauthorized } from './access.ts';
import { HttpError } from './http-error.ts';
import { readJson } from './request-body.ts';

const JSON_LIMIT = 16 * 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
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
    publicKeys: await trustedPublicKeys(larder, cache.name),
    upstreams: (await larder.index.listUpstreams(cache.name)).map(upstreamJson),
  };
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
        const cache = await updateCache(larder, cacheName!, settingsOf(await objectBody(req)));
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
        return sendJson(res, 200, { missing: paths.filter((_, i) => !present.has(hashParts[i]!)) });
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
    if (expiresIn !== undefined && !(expiresIn > 0)) throw new HttpError(400, "field 'expiresInSeconds': expected a positive number");
    const label = field<string>(body, 'label', 'string') ?? '';
    try {
      const { token, record } = await this.larder.tokens.issue({
        cache,
        permission,
        label,
        expiresAt: expiresIn === undefined ? null : Date.now() + expiresIn * 1000,
      });
      return sendJson(res, 201, { ...tokenJson(record), token });
    } catch (error) {
      if (error instanceof Rejection && error.kind === 'conflict') throw new HttpError(404, error.message);
      throw error;
    }
  }
}
