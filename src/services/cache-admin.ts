// Caches and their signing keys. A cache starts with one active key; rotation
// makes a new active key and leaves the old one published (still trusted by
// clients) until it is retired, so a key change needs no flag day.

import type { CacheIndex, CacheRecord, KeyRecord, UpstreamRecord } from '../index/cache-index.ts';
import { formatCacheInfo } from '../nix/cache-info.ts';
import { isCompression } from '../nix/compression.ts';
import { formatPublicKey, formatSecretKey, generateSecretKey } from '../nix/signing-key.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { cacheInfoKey } from '../storage/layout.ts';
import { Rejection } from './rejection.ts';
import { parseUpstreams } from './upstream-settings.ts';

export interface AdminContext {
  readonly index: CacheIndex;
  readonly store: BlobStore;
  readonly storeDir: string;
  /** Prefix of new key names, so that keys of different servers never share a name. */
  readonly keyNamePrefix: string;
}

const CACHE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** First path segments the server uses itself. */
const RESERVED_NAMES = new Set(['api', 'metrics', 'healthz', 'readyz', 'static', 'login', 'logout', 'ui', 'favicon.ico']);

export function cacheNameProblem(name: string): string | undefined {
  if (!CACHE_NAME.test(name)) return `cache name '${name}': expected 1-63 of a-z 0-9 . _ -, starting with a letter or digit`;
  if (RESERVED_NAMES.has(name)) return `cache name '${name}' is reserved`;
  return undefined;
}

export interface CacheSettings {
  readonly public: boolean;
  readonly priority: number;
  readonly compression: string;
  readonly mirror: boolean;
}

export const DEFAULT_CACHE_SETTINGS: CacheSettings = { public: false, priority: 40, compression: 'zstd', mirror: false };

function checkSettings(settings: Partial<CacheSettings>): void {
  if (settings.priority !== undefined && (!Number.isInteger(settings.priority) || settings.priority < 0 || settings.priority > 1000)) {
    throw new Rejection('invalid', `priority: expected an integer from 0 to 1000, got ${settings.priority}`);
  }
  if (settings.compression !== undefined && !(isCompression(settings.compression) && ['zstd', 'xz', 'none'].includes(settings.compression))) {
    throw new Rejection('invalid', `compression: expected zstd, xz or none, got '${settings.compression}'`);
  }
}

export function cacheInfoText(ctx: Pick<AdminContext, 'storeDir'>, cache: CacheRecord): string {
  return formatCacheInfo({ storeDir: ctx.storeDir, wantMassQuery: true, priority: cache.priority });
}

export async function createCache(ctx: AdminContext, name: string, settings: Partial<CacheSettings> = {}): Promise<CacheRecord> {
  const problem = cacheNameProblem(name);
  if (problem) throw new Rejection('invalid', problem);
  checkSettings(settings);
  if (await ctx.index.getCache(name)) throw new Rejection('conflict', `cache '${name}' already exists`);
  const cache: CacheRecord = {
    name,
    ...DEFAULT_CACHE_SETTINGS,
    ...settings,
    createdAt: Date.now(),
    retentionMs: null,
    maxSize: null,
    generation: 0,
  };
  await ctx.index.createCache(cache);
  await ctx.index.addKey(newKey(ctx, name, 1));
  // The blob store stays a valid binary cache on its own (invariant 1).
  await ctx.store.put(cacheInfoKey(name), cacheInfoText(ctx, cache));
  return cache;
}

/** Garbage collection's policy: null removes a limit. */
export interface GcPolicyPatch {
  readonly retentionMs?: number | null;
  readonly maxSize?: number | null;
}

export async function updateCache(ctx: AdminContext, name: string, patch: Partial<CacheSettings> & GcPolicyPatch): Promise<CacheRecord> {
  checkSettings(patch);
  for (const [field, value] of [['retention', patch.retentionMs], ['maxSize', patch.maxSize]] as const) {
    if (value !== undefined && value !== null && !(Number.isSafeInteger(value) && value > 0)) {
      throw new Rejection('invalid', `${field}: expected a positive amount, got ${value}`);
    }
  }
  const cache = await ctx.index.updateCache(name, patch);
  if (!cache) throw new Rejection('conflict', `no cache '${name}'`);
  await ctx.store.put(cacheInfoKey(name), cacheInfoText(ctx, cache));
  return cache;
}

/** Replaces the cache's upstreams with `value` (a request body), once all of it checks out. */
export async function setUpstreams(ctx: Pick<AdminContext, 'index'>, cache: string, value: unknown): Promise<UpstreamRecord[]> {
  const upstreams = parseUpstreams(value);
  if (!(await ctx.index.getCache(cache))) throw new Rejection('conflict', `no cache '${cache}'`);
  await ctx.index.setUpstreams(cache, upstreams);
  return ctx.index.listUpstreams(cache);
}

function newKey(ctx: AdminContext, cache: string, generation: number): KeyRecord {
  const key = generateSecretKey(`${ctx.keyNamePrefix}${cache}-${generation}`);
  return {
    cache,
    name: key.name,
    secretKey: formatSecretKey(key),
    publicKey: formatPublicKey(key.publicKey),
    state: 'active',
    createdAt: Date.now(),
  };
}

/** Public keys clients should trust: the active and the still-published ones. */
export async function trustedPublicKeys(ctx: Pick<AdminContext, 'index'>, cache: string): Promise<string[]> {
  return (await ctx.index.listKeys(cache)).filter((k) => k.state !== 'retired').map((k) => k.publicKey);
}

export async function rotateKey(ctx: AdminContext, cache: string): Promise<KeyRecord> {
  const keys = await ctx.index.listKeys(cache);
  const generation = Math.max(0, ...keys.map((k) => Number(/-(\d+)$/.exec(k.name)?.[1] ?? 0))) + 1;
  const fresh = newKey(ctx, cache, generation);
  await ctx.index.addKey(fresh);
  for (const key of keys) if (key.state === 'active') await ctx.index.setKeyState(cache, key.name, 'published');
  return fresh;
}

export async function retireKey(ctx: AdminContext, cache: string, name: string): Promise<void> {
  const keys = await ctx.index.listKeys(cache);
  const key = keys.find((k) => k.name === name);
  if (!key) throw new Rejection('conflict', `cache '${cache}' has no key '${name}'`);
  if (key.state === 'retired') throw new Rejection('conflict', `key '${name}' of '${cache}' is already retired`);
  if (key.state === 'active' && keys.filter((k) => k.state === 'active').length === 1) {
    throw new Rejection('conflict', `key '${name}' is the only active key of '${cache}'; rotate first`);
  }
  await ctx.index.setKeyState(cache, name, 'retired');
}
