// A real S3 service for tests: OpenStack Swift with s3api on 127.0.0.1,
// started through scripts/services/swift-start.sh when it is not running (the
// script's lock makes concurrent test files start it once), or the service
// named by LARDER_TEST_S3_ENDPOINT (+ _ACCESS_KEY_ID, _SECRET_ACCESS_KEY,
// _REGION). Each test gets a fresh bucket, emptied and deleted after it.
// Without a service the test skips with the reason, unless
// LARDER_REQUIRE_SERVICES=1 (CI), where it fails.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3StoreOptions } from '../../src/storage/s3-store.ts';
import { servicesRequired } from './nix-env.ts';

const SCRIPTS = fileURLToPath(new URL('../../scripts/services/', import.meta.url));

export interface S3Connection {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface S3TestBucket extends S3Connection {
  readonly bucket: string;
  /** A client of the same service, for looking behind the store's back. */
  readonly client: S3Client;
  /** Store options for this bucket. */
  options(prefix?: string, extra?: Partial<S3StoreOptions>): S3StoreOptions;
}

interface ScriptResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one of scripts/services/*.sh; never rejects. */
export function runServiceScript(name: string, env: NodeJS.ProcessEnv = {}, args: readonly string[] = []): Promise<ScriptResult> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(SCRIPTS, name), ...args],
      { env: { ...process.env, ...env }, timeout: 15 * 60_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function parseEnv(stdout: string): S3Connection {
  const values = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^(LARDER_S3_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) values.set(match[1]!, match[2]!);
  }
  const get = (name: string) => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`swift-start.sh printed no ${name}`);
    return value;
  };
  return {
    endpoint: get('LARDER_S3_ENDPOINT'),
    region: get('LARDER_S3_REGION'),
    accessKeyId: get('LARDER_S3_ACCESS_KEY_ID'),
    secretAccessKey: get('LARDER_S3_SECRET_ACCESS_KEY'),
  };
}

/** Why a service could not be had, for the skip message or the failure. */
function reason(what: string, result: ScriptResult): string {
  const lines = result.stderr.trim().split('\n').filter((line) => line.startsWith('[swift-start]'));
  return `${what} (exit ${result.code}: ${lines.at(-1) ?? result.stderr.trim().split('\n').at(-1) ?? ''})`;
}

let shared: Promise<S3Connection | string> | undefined;

async function sharedService(): Promise<S3Connection | string> {
  const endpoint = process.env.LARDER_TEST_S3_ENDPOINT;
  if (endpoint) {
    return {
      endpoint,
      region: process.env.LARDER_TEST_S3_REGION ?? 'us-east-1',
      accessKeyId: process.env.LARDER_TEST_S3_ACCESS_KEY_ID ?? 'test:tester',
      secretAccessKey: process.env.LARDER_TEST_S3_SECRET_ACCESS_KEY ?? 'testing',
    };
  }
  const result = await runServiceScript('swift-start.sh');
  if (result.code !== 0) return reason('the S3 service (Swift) could not be started by scripts/services/swift-start.sh', result);
  return parseEnv(result.stdout);
}

function unavailable(t: TestContext, why: string): undefined {
  if (servicesRequired) throw new Error(`${why}, but LARDER_REQUIRE_SERVICES=1`);
  t.skip(why);
  return undefined;
}

export function adminClient(connection: S3Connection): S3Client {
  return new S3Client({
    endpoint: connection.endpoint,
    region: connection.region,
    forcePathStyle: true,
    credentials: { accessKeyId: connection.accessKeyId, secretAccessKey: connection.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: 3_000, socketTimeout: 30_000 },
  });
}

export function storeOptions(connection: S3Connection, bucket: string, prefix = '', extra: Partial<S3StoreOptions> = {}): S3StoreOptions {
  return {
    endpoint: connection.endpoint,
    region: connection.region,
    bucket,
    prefix,
    forcePathStyle: true,
    credentials: { accessKeyId: connection.accessKeyId, secretAccessKey: connection.secretAccessKey },
    ...extra,
  };
}

/** Removes stray multipart uploads, every object, then the bucket itself. */
async function removeBucket(client: S3Client, bucket: string): Promise<void> {
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const upload of uploads.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key!, UploadId: upload.UploadId! }));
  }
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ...(token && { ContinuationToken: token }) }));
    const keys = (page.Contents ?? []).map((object) => object.Key!);
    for (let i = 0; i < keys.length; i += 8) {
      await Promise.all(keys.slice(i, i + 8).map((Key) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key }))));
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

/**
 * The shared S3 service with a fresh bucket for this test, or undefined when
 * the test was skipped because there is none.
 */
export async function s3Service(t: TestContext): Promise<S3TestBucket | undefined> {
  const connection = await (shared ??= sharedService());
  if (typeof connection === 'string') return unavailable(t, connection);
  const client = adminClient(connection);
  const bucket = `larder-test-${randomBytes(6).toString('hex')}`;
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    client.destroy();
    return unavailable(t, `cannot create a bucket at ${connection.endpoint}: ${(error as Error).name}: ${(error as Error).message}`);
  }
  t.after(async () => {
    try {
      await removeBucket(client, bucket);
    } finally {
      client.destroy();
    }
  });
  return { ...connection, bucket, client, options: (prefix, extra) => storeOptions(connection, bucket, prefix, extra) };
}

/** A Swift of its own (own directory and ports) that a test may stop and start again. */
export interface PrivateSwift {
  readonly connection: S3Connection;
  stop(): Promise<void>;
  start(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    let free = true;
    for (let port = base; port < base + count && free; port++) free = await portFree(port);
    if (free) return base;
  }
  throw new Error('no free range of ports on 127.0.0.1');
}

/**
 * Starts a private Swift (stopped and wiped after the test), or skips (fails
 * with LARDER_REQUIRE_SERVICES=1) when it cannot; skips when the tests use an
 * external service through LARDER_TEST_S3_ENDPOINT, which they must not stop.
 */
export async function privateSwift(t: TestContext): Promise<PrivateSwift | undefined> {
  if (process.env.LARDER_TEST_S3_ENDPOINT) {
    t.skip('the tests use the external S3 service of LARDER_TEST_S3_ENDPOINT; not starting a private Swift');
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), 'larder-swift-'));
  const port = await freePortRange(6);
  const env = { LARDER_SWIFT_DIR: dir, LARDER_SWIFT_PORT: String(port), LARDER_SWIFT_BACKEND_PORT: String(port + 1) };
  t.after(async () => {
    await runServiceScript('swift-stop.sh', env, ['--wipe']);
    await rm(dir, { recursive: true, force: true });
  });
  const first = await runServiceScript('swift-start.sh', env);
  if (first.code !== 0) return unavailable(t, reason('a private Swift could not be started', first));
  const connection = parseEnv(first.stdout);
  return {
    connection,
    stop: async () => {
      const result = await runServiceScript('swift-stop.sh', env);
      if (result.code !== 0) throw new Error(`swift-stop.sh failed: ${result.stderr}`);
    },
    start: async () => {
      const result = await runServiceScript('swift-start.sh', env);
      if (result.code !== 0) throw new Error(reason('swift-start.sh failed', result));
    },
  };
}
