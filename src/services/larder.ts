// One larder instance: its index, blob store and token authority, and the
// settings the services need. The CLI opens it; the server and tests use it.

import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerConfig, StorageConfig } from '../config/config.ts';
import { openIndex } from '../index/open-index.ts';
import { IndexConflictError, type CacheIndex } from '../index/cache-index.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { FilesystemStore } from '../storage/filesystem-store.ts';
import { AccessLog } from './access-log.ts';
import { createCache, type AdminContext } from './cache-admin.ts';
import { DEFAULT_GC_SETTINGS, leaseHolder, type GcContext, type GcSettings } from './gc.ts';
import type { PinContext } from './pins.ts';
import type { PublishContext } from './publish.ts';
import { DEFAULT_MIRROR_SETTINGS, Mirror, type MirrorSettings } from './mirror/mirror.ts';
import { Rejection } from './rejection.ts';
import { SILENT_TELEMETRY, type Telemetry } from './telemetry.ts';
import { Tokens } from './tokens.ts';
import { UpstreamChecker } from './upstreams.ts';

export interface LarderSettings {
  readonly storeDir: string;
  readonly keyNamePrefix: string;
  readonly maxNarSize: number;
  /** Largest narinfo, listing or log body accepted, in bytes. */
  readonly maxSmallBodySize: number;
  /** Garbage collection's timings; the defaults where absent. */
  readonly gc?: Partial<GcSettings>;
  /** The clock of access times and garbage collection; default Date.now. */
  readonly now?: () => number;
  /** Where counted events go; silent by default. */
  readonly telemetry?: Telemetry;
  /** The pull-through proxy's timings; the defaults where absent (spooling to the system's temporary directory). */
  readonly mirror?: Partial<MirrorSettings>;
}

export interface Larder extends PublishContext, AdminContext, GcContext, PinContext {
  readonly tokens: Tokens;
  readonly settings: LarderSettings;
  readonly accesses: AccessLog;
  readonly telemetry: Telemetry;
  readonly mirror: Mirror;
  /** Calls `listener` with a cache's name after paths of it were deleted in this process. */
  onPathsDeleted(listener: (cache: string) => void): void;
  /** Writes the pending access times, then closes the index and the store. */
  close(): Promise<void>;
}

export function assembleLarder(index: CacheIndex, store: BlobStore, settings: LarderSettings): Larder {
  const now = settings.now ?? Date.now;
  const listeners = new Set<(cache: string) => void>();
  const accesses = new AccessLog(index, {
    now,
    onError: (error) => process.stderr.write(`larder: cannot record access times yet: ${(error as Error).message}\n`),
  });
  const larder: Omit<Larder, 'mirror'> = {
    index,
    store,
    tokens: new Tokens(index),
    settings,
    storeDir: settings.storeDir,
    keyNamePrefix: settings.keyNamePrefix,
    maxNarSize: settings.maxNarSize,
    upstreams: new UpstreamChecker(index, { storeDir: settings.storeDir }),
    accesses,
    telemetry: settings.telemetry ?? SILENT_TELEMETRY,
    holder: leaseHolder(),
    gcSettings: { ...DEFAULT_GC_SETTINGS, ...settings.gc },
    now,
    pathsDeleted: (cache) => {
      for (const listener of listeners) listener(cache);
    },
    onPathsDeleted: (listener) => void listeners.add(listener),
    close: async () => {
      await accesses.stop().catch((error: unknown) => {
        process.stderr.write(`larder: access times not recorded: ${(error as Error).message}\n`);
      });
      await index.close();
      await store.close();
    },
  };
  const mirror = new Mirror(larder, { ...DEFAULT_MIRROR_SETTINGS, spoolDir: tmpdir(), ...settings.mirror });
  return { ...larder, mirror };
}

/** The blob store a configuration describes: a directory, or a bucket (and prefix) of an S3-compatible service. */
export async function openStore(config: StorageConfig): Promise<BlobStore> {
  if (config.type === 'filesystem') return FilesystemStore.open(config.path);
  // Loaded only when configured: the AWS SDK is the largest part of a server's memory.
  const { S3Store } = await import('../storage/s3-store.ts');
  return S3Store.open({
    ...(config.endpoint && { endpoint: config.endpoint }),
    region: config.region,
    bucket: config.bucket,
    prefix: config.prefix,
    forcePathStyle: config.pathStyle,
    ...(config.accessKeyId && config.secretAccessKey && { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } }),
    ...(config.storageClass && { storageClass: config.storageClass }),
    // Two 5 MiB parts (the S3 minimum) in flight per upload keep a LAN or cloud link busy while a server
    // ingesting many NARs at once stays within a small memory budget.
    partSize: 5 * 2 ** 20,
    queueSize: 2,
  });
}

/** Mirror downloads in progress are spooled here: the data directory's disk, not a RAM-backed /tmp. */
async function spoolDir(config: ServerConfig): Promise<string> {
  const dir = config.mirror.spoolDir ?? join(config.dataDir, 'spool');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** The larder a configuration describes: SQLite or PostgreSQL, a directory or a bucket; counted events go to `telemetry`. */
export async function openConfiguredLarder(config: ServerConfig, telemetry?: Telemetry): Promise<Larder> {
  await mkdir(config.dataDir, { recursive: true });
  const index = await openIndex(config.index);
  try {
    return assembleLarder(index, await openStore(config.storage), {
      storeDir: config.storeDir,
      keyNamePrefix: config.keyNamePrefix,
      maxNarSize: config.maxNarSize,
      maxSmallBodySize: config.maxBodySize,
      gc: { uploadGraceMs: config.gc.uploadGraceMs },
      ...(telemetry && { telemetry }),
      mirror: { ...config.mirror, spoolDir: await spoolDir(config) },
    });
  } catch (error) {
    await index.close();
    throw error;
  }
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
  try {
    await createCache(larder, cache);
  } catch (error) {
    // Another replica starting at the same moment got there first.
    if (error instanceof Rejection || error instanceof IndexConflictError) return undefined;
    throw error;
  }
  const admin = await larder.tokens.issue({ cache: null, permission: 'admin', label: 'first-start admin' });
  await writeFile(adminTokenFile, `${admin.token}\n`, { mode: 0o600 });
  await chmod(adminTokenFile, 0o600);
  const write = await larder.tokens.issue({ cache, permission: 'write', label: 'first-start write' });
  return { adminToken: admin.token, writeToken: write.token, cache };
}
