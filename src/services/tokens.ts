// Tokens: random secrets handed out once and stored only as sha256 hashes.
// Lookups are cached for a second, so that a token revoked on any replica is
// refused everywhere within that second; a revocation here clears at once.

import { createHash, randomBytes } from 'node:crypto';
import type { CacheIndex, Permission, TokenRecord } from '../index/cache-index.ts';
import { Rejection } from './rejection.ts';

const TOKEN_PREFIX = 'ldr_';
const CACHE_MS = 1000;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

const RANK: Readonly<Record<Permission, number>> = { read: 1, write: 2, admin: 3 };

export function isPermission(text: string): text is Permission {
  return Object.hasOwn(RANK, text);
}

/** Whether a token grants `permission` on `cache` (server-admin tokens grant all). */
export function grants(token: Pick<TokenRecord, 'cache' | 'permission'>, cache: string, permission: Permission): boolean {
  if (token.cache === null) return token.permission === 'admin';
  return token.cache === cache && RANK[token.permission] >= RANK[permission];
}

export function isServerAdmin(token: Pick<TokenRecord, 'cache' | 'permission'>): boolean {
  return token.cache === null && token.permission === 'admin';
}

export interface NewToken {
  readonly cache: string | null;
  readonly permission: Permission;
  readonly label?: string;
  readonly expiresAt?: number | null;
}

export class Tokens {
  private readonly index: CacheIndex;
  private readonly cached = new Map<string, { token: TokenRecord | undefined; at: number }>();

  constructor(index: CacheIndex) {
    this.index = index;
  }

  async issue(request: NewToken): Promise<{ token: string; record: TokenRecord }> {
    if (request.cache === null && request.permission !== 'admin') {
      throw new Rejection('invalid', 'a token without a cache must be a server-admin token (permission admin)');
    }
    if (request.expiresAt != null && request.expiresAt <= Date.now()) throw new Rejection('invalid', 'expiry is in the past');
    if (request.cache !== null && !(await this.index.getCache(request.cache))) {
      throw new Rejection('conflict', `no cache '${request.cache}'`);
    }
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const record: TokenRecord = {
      id: randomBytes(8).toString('hex'),
      hash: hashToken(token),
      label: request.label ?? '',
      cache: request.cache,
      permission: request.permission,
      createdAt: Date.now(),
      expiresAt: request.expiresAt ?? null,
      revokedAt: null,
    };
    await this.index.createToken(record);
    return { token, record };
  }

  /** The valid (not revoked, not expired) token record for a presented secret. */
  async authenticate(token: string): Promise<TokenRecord | undefined> {
    const now = Date.now();
    // Keyed by the secret as presented: hashing it on every request costs more than the lookup.
    let entry = this.cached.get(token);
    if (!entry || now - entry.at > CACHE_MS) {
      entry = { token: await this.index.findTokenByHash(hashToken(token)), at: now };
      if (this.cached.size > 10_000) this.cached.clear();
      this.cached.set(token, entry);
    }
    const record = entry.token;
    if (!record || record.revokedAt !== null || (record.expiresAt !== null && record.expiresAt <= now)) return undefined;
    return record;
  }

  async revoke(id: string): Promise<boolean> {
    const revoked = await this.index.revokeToken(id, Date.now());
    this.cached.clear();
    return revoked;
  }
}
