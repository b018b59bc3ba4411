// One larder instance: its index, blob store and token authority, and the
// settings the services need. The CLI opens it; the server and tests use it.

import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServerConfig } from '../config/config.ts';
import type { CacheIndex } from '../index/cache-index.ts';
import { openSqliteIndex } from '../index/sql-index.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { FilesystemStore } from '../storage/filesystem-store.ts';
import { createCache, type AdminContext } from './cache-admin.ts';
import type { PublishContext } from './publish.ts';
import { Tokens } from './tokens.ts';
import { UpstreamChecker } from './upstreams.ts';
import { mkdir } from 'node:fs/promises';

export interface LarderSettings {
  readonly storeDir: string;
  readonly keyNamePrefix: string;
  readonly maxNarSize: number;
  /** Largest narinfo, listing or log body accepted, in bytes. */
  readonly maxSmallBodySize: number;
}

export interface Larder extends PublishContext, AdminContext {
  readonly tokens: Tokens;
  readonly settings: LarderSettings;
  close(): Promise<void>;
}

export function assembleLarder(index: CacheIndex, store: BlobStore, settings: LarderSettings): Larder {
  return {
    index,
    store,
    tokens: new Tokens(index),
    settings,
    storeDir: settings.storeDir,
    keyNamePrefix: settings.keyNamePrefix,
    maxNarSize: settings.maxNarSize,
    upstreams: new UpstreamChecker(index, { storeDir: settings.storeDir }),
    close: async () => {
      await index.close();
      await store.close();
    },
  };
}

/** The larder a configuration describes (for now: SQLite and a directory). */
export async function openConfiguredLarder(config: ServerConfig): Promise<Larder> {
  return openEmbeddedLarder(config.dataDir, {
    storeDir: config.storeDir,
    keyNamePrefix: config.keyNamePrefix,
    maxNarSize: config.maxNarSize,
    maxSmallBodySize: config.maxBodySize,
  });
}

/** Embedded defaults: a SQLite index and a filesystem store under one directory. */
export async function openEmbeddedLarder(dataDir: string, settings: LarderSettings): Promise<Larder> {
  await mkdir(dataDir, { recursive: true });
  const index = await openSqliteIndex(join(dataDir, 'index.sqlite'));
  const store = await FilesystemStore.open(join(dataDir, 'store'));
  return assembleLarder(index, store, settings);
}

export interface FirstStart {
  readonly adminToken: string;
  /** A write token for the first cache, to paste into a netrc file. */
  readonly writeToken: string;
  readonly cache: string;
}

/**
 * On a fresh instance: the cache `main` (private, with a new key), a
 * server-admin token saved to `adminTokenFile` (0600) and a write token for
 * `main`. Does nothing when the instance has caches or tokens already.
 */
export async function initializeIfEmpty(larder: Larder, adminTokenFile: string): Promise<FirstStart | undefined> {
  if ((await larder.index.listCaches()).length > 0 || (await larder.index.listTokens()).length > 0) return undefined;
  const cache = 'main';
  await createCache(larder, cache);
  const admin = await larder.tokens.issue({ cache: null, permission: 'admin', label: 'first-start admin' });
  await writeFile(adminTokenFile, `${admin.token}\n`, { mode: 0o600 });
  await chmod(adminTokenFile, 0o600);
  const write = await larder.tokens.issue({ cache, permission: 'write', label: 'first-start write' });
  return { adminToken: admin.token, writeToken: write.token, cache };
}
