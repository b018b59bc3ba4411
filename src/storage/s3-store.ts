// A blob store in an S3 bucket (AWS S3 or a compatible server: MinIO, Ceph,
// Garage, Swift's s3api, …), every key under an optional prefix.
//
// Atomicity comes from S3 itself: a small blob is one PutObject, and a streamed
// blob is a multipart upload straight to its final key, which becomes visible
// only when the upload completes (on commit); an aborted or crashed upload
// leaves no object, only parts that AbortMultipartUpload (or
// sweepIncompleteUploads, or a bucket lifecycle rule) removes.
//
// Failures: an absent key is `undefined`/`false`; everything else (refused or
// timed-out connections, 5xx, access denied, a missing bucket) is a
// StorageUnavailableError with a one-line message. The SDK retries transient
// failures itself (maxAttempts) and the timeouts below keep a dead endpoint
// from holding a request for more than a few seconds.

import { createHash } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { checkKey, StorageUnavailableError, type BlobEntry, type BlobRange, type BlobStore, type BlobWriter, type OpenBlob } from './blob-store.ts';

export interface S3StoreOptions {
  /** e.g. http://127.0.0.1:9000; absent for AWS S3 itself. */
  readonly endpoint?: string;
  readonly region: string;
  readonly bucket: string;
  /** Key prefix inside the bucket ('' for none); `larder` and `larder/` both put keys under `larder/`. */
  readonly prefix: string;
  /** Path-style URLs (http://host/bucket/key), which most S3-compatible servers need. */
  readonly forcePathStyle: boolean;
  /** Without them the SDK's default chain applies (environment, profile, instance role, …). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** For new objects, e.g. STANDARD_IA; the bucket's default otherwise. */
  readonly storageClass?: string;

  // Tuning; the defaults suit AWS and a LAN object store alike.
  /** Connecting to the endpoint (default 3 s). */
  readonly connectTimeoutMs?: number;
  /** Whole request up to the response headers, for every request but multipart data (default 10 s). */
  readonly requestTimeoutMs?: number;
  /** A socket with no traffic either way, for every request and response body (default 30 s). */
  readonly idleTimeoutMs?: number;
  /** Attempts per request, the SDK's standard retry with backoff (default 3). */
  readonly maxAttempts?: number;
  /** Multipart part size (default 8 MiB, at least 5 MiB). */
  readonly partSize?: number;
  /** Parts uploaded in parallel per writer (default 4): a writer holds about (queueSize + 1) × partSize. */
  readonly queueSize?: number;
  /** Keys (or uploads) asked for per listing request (default 1000, the S3 maximum). */
  readonly listPageSize?: number;
}

const MiB = 1024 * 1024;
/** How long a successful HeadBucket lets a 404 on HeadObject mean "absent key" rather than "no bucket". */
const BUCKET_CHECK_TTL_MS = 30_000;
const DELETE_BATCH = 200;

/** A one-line description of an SDK or network error: never a stack trace. */
function describe(error: unknown): string {
  const e = error as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const message = String(e.message ?? '')
    .replace(/^@smithy\/node-http-handler - (\[ERROR\] )?/, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
  if (status !== undefined) {
    // Errors of bodiless responses (HEAD) have no code: the status says it all.
    const head = e.name && e.name !== 'Unknown' && e.name !== 'UnknownError' ? `${e.name} (HTTP ${status})` : `HTTP ${status}`;
    return message && message !== e.name && message !== 'UnknownError' ? `${head}: ${message}` : head;
  }
  if (e.code && message && !message.includes(e.code)) return `${e.code}: ${message}`;
  return e.code ?? (message || e.name || String(error));
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function errorName(error: unknown): string | undefined {
  return (error as { name?: string }).name;
}

/** A 404 about the key itself (NoSuchKey, or HEAD's bodiless NotFound); a missing bucket is not "absent". */
function isAbsent(error: unknown): boolean {
  const name = errorName(error);
  if (name === 'NoSuchKey' || name === 'NotFound') return true;
  return httpStatus(error) === 404 && name !== 'NoSuchBucket' && name !== 'NoSuchUpload';
}

/** What a plain static server or S3 website would send for each kind of file in a binary cache. */
function contentType(key: string): string {
  if (key.endsWith('.narinfo')) return 'text/x-nix-narinfo';
  if (key.endsWith('/nix-cache-info') || key === 'nix-cache-info') return 'text/x-nix-cache-info';
  if (key.includes('/nar/') || key.startsWith('nar/')) return 'application/x-nix-nar';
  if (key.endsWith('.ls')) return 'application/json';
  if (key.includes('/log/') || key.startsWith('log/')) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

export class S3Store implements BlobStore {
  readonly bucket: string;
  /** '' or ending in '/'. */
  readonly prefix: string;
  readonly client: S3Client;
  private readonly storageClass: StorageClass | undefined;
  private readonly requestTimeoutMs: number;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly listPageSize: number;
  private readonly where: string;
  private bucketSeenAt = -Infinity;

  private constructor(options: S3StoreOptions) {
    const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.prefix = prefix === '' ? '' : `${checkKey(prefix)}/`;
    this.bucket = options.bucket;
    this.storageClass = options.storageClass as StorageClass | undefined;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.partSize = Math.max(options.partSize ?? 8 * MiB, 5 * MiB);
    this.queueSize = Math.max(options.queueSize ?? 4, 1);
    this.listPageSize = Math.min(Math.max(options.listPageSize ?? 1000, 1), 1000);
    this.where = `s3://${this.bucket}/${this.prefix}`;
    this.client = new S3Client({
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
      ...(options.credentials && {
        credentials: { accessKeyId: options.credentials.accessKeyId, secretAccessKey: options.credentials.secretAccessKey },
      }),
      // Checksums only where the API demands them: many S3-compatible servers
      // (Swift's s3api among them) refuse the aws-chunked bodies and trailing
      // checksums the SDK sends by default.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: options.maxAttempts ?? 3,
      followRegionRedirects: true,
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? 3_000,
        socketTimeout: options.idleTimeoutMs ?? 30_000,
        // The whole-request limit is given per command (multipart data gets none:
        // a part may take long on a slow link; the idle limit still applies).
        throwOnRequestTimeout: true,
        httpAgent: { keepAlive: true, maxSockets: 256 },
        httpsAgent: { keepAlive: true, maxSockets: 256 },
      },
    });
    // Multi-object delete requires Content-MD5 on some servers (Swift's s3api
    // among them), where current SDKs send only a CRC32 checksum.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        if (context.commandName === 'DeleteObjectsCommand' && request.headers && !request.headers['content-md5']) {
          const body = request.body;
          if (typeof body === 'string' || body instanceof Uint8Array) {
            request.headers['content-md5'] = createHash('md5').update(body).digest('base64');
          }
        }
        return next(args);
      },
      { step: 'build', name: 'larderContentMd5ForDeleteObjects' },
    );
  }

  /** Makes no request: a store opened while its endpoint is down answers with StorageUnavailableError until it is back. */
  static async open(options: S3StoreOptions): Promise<S3Store> {
    if (!options.bucket) throw new Error('S3 store: a bucket is required');
    return new S3Store(options);
  }

  private key(key: string): string {
    return this.prefix + checkKey(key);
  }

  private unavailable(operation: string, key: string, error: unknown): StorageUnavailableError {
    return new StorageUnavailableError(`storage: cannot ${operation} ${key} in ${this.where}: ${describe(error)}`, { cause: error });
  }

  private options(): { requestTimeout: number } {
    return { requestTimeout: this.requestTimeoutMs };
  }

  /** Checks that the bucket exists and answers; throws StorageUnavailableError naming the problem. */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), this.options());
      this.bucketSeenAt = Date.now();
    } catch (error) {
      if (httpStatus(error) === 404) {
        throw new StorageUnavailableError(`storage: bucket '${this.bucket}' does not exist`, { cause: error });
      }
      throw new StorageUnavailableError(`storage: cannot reach bucket '${this.bucket}': ${describe(error)}`, { cause: error });
    }
  }

  /**
   * A 404 without NoSuchKey (HEAD has no body to say which) may be a missing
   * bucket or a wrong endpoint rather than a missing key: confirm that the
   * bucket answers (cached for a while) before saying "absent".
   */
  private async confirmAbsent(operation: string, key: string, error: unknown): Promise<undefined> {
    if (errorName(error) === 'NoSuchKey' || Date.now() - this.bucketSeenAt < BUCKET_CHECK_TTL_MS) return undefined;
    try {
      await this.check();
    } catch (error) {
      throw new StorageUnavailableError(`storage: cannot ${operation} ${key}: ${(error as Error).message.replace(/^storage: /, '')}`, {
        cause: error,
      });
    }
    return undefined;
  }

  async stat(key: string): Promise<number | undefined> {
    const full = this.key(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }), this.options());
      return head.ContentLength ?? 0;
    } catch (error) {
      if (isAbsent(error)) return this.confirmAbsent('stat', key, error);
      throw this.unavailable('stat', key, error);
    }
  }

  async open(key: string, range?: BlobRange): Promise<OpenBlob | undefined> {
    const full = this.key(key);
    let response: GetObjectCommandOutput;
    try {
      response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: full, ...(range && { Range: `bytes=${range.start}-${range.end}` }) }),
        this.options(),
      );
    } catch (error) {
      if (isAbsent(error)) return this.confirmAbsent('open', key, error);
      if (range && errorName(error) === 'InvalidRange') {
        // Past the end (the blob changed since the caller's stat): nothing to send, as a file would give.
        const size = await this.stat(key);
        return size === undefined ? undefined : { size, stream: Readable.from([]) };
      }
      throw this.unavailable('open', key, error);
    }
    const body = response.Body;
    if (!(body instanceof Readable)) {
      throw this.unavailable('open', key, new Error('the response has no body stream'));
    }
    let size = response.ContentLength ?? 0;
    if (range) {
      const total = /\/(\d+)\s*$/.exec(response.ContentRange ?? '');
      if (!total) {
        body.destroy();
        throw this.unavailable('open', key, new Error(`the server ignored the Range header (HTTP ${response.$metadata.httpStatusCode})`));
      }
      size = Number(total[1]);
    }
    return { size, stream: body };
  }

  async put(key: string, data: string | Uint8Array): Promise<void> {
    const full = this.key(key);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: full,
          Body: data,
          ContentLength: typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength,
          ContentType: contentType(full),
          ...(this.storageClass && { StorageClass: this.storageClass }),
        }),
        this.options(),
      );
    } catch (error) {
      throw this.unavailable('write', key, error);
    }
  }

  async createWriter(key: string): Promise<BlobWriter> {
    return new S3Writer(this, key, this.key(key), {
      Bucket: this.bucket,
      ContentType: contentType(this.key(key)),
      ...(this.storageClass && { StorageClass: this.storageClass }),
      partSize: this.partSize,
      queueSize: this.queueSize,
    });
  }

  /** @internal for S3Writer */
  failure(operation: string, key: string, error: unknown): StorageUnavailableError {
    return error instanceof StorageUnavailableError ? error : this.unavailable(operation, key, error);
  }

  /** @internal for S3Writer: removes an unfinished multipart upload (gone already is fine). */
  async abortUpload(fullKey: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }), this.options());
    } catch (error) {
      if (errorName(error) !== 'NoSuchUpload' && httpStatus(error) !== 404) throw error;
    }
  }

  async delete(key: string): Promise<void> {
    const full = this.key(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full }), this.options());
    } catch (error) {
      if (!isAbsent(error)) throw this.unavailable('delete', key, error);
    }
  }

  /**
   * Deletes many keys with DeleteObjects, absent keys being fine. Batches of
   * 200 (S3 allows 1000), each given 4× the request timeout: some servers
   * (Swift) delete one object after the other before they answer.
   */
  async deleteMany(keys: readonly string[]): Promise<void> {
    const full = keys.map((key) => this.key(key));
    for (let i = 0; i < full.length; i += DELETE_BATCH) {
      const batch = full.slice(i, i + DELETE_BATCH);
      let errors;
      try {
        const result = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          { requestTimeout: 4 * this.requestTimeoutMs },
        );
        errors = (result.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      } catch (error) {
        throw this.unavailable('delete', `${batch.length} keys from ${batch[0]!.slice(this.prefix.length)}`, error);
      }
      const first = errors[0];
      if (first) {
        const key = (first.Key ?? '').slice(this.prefix.length);
        throw new StorageUnavailableError(
          `storage: cannot delete ${key} in ${this.where}: ${first.Code ?? 'error'}: ${first.Message ?? ''} (${errors.length} keys failed)`,
        );
      }
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    for await (const entry of this.listEntries(prefix)) yield entry.key;
  }

  async *listEntries(prefix: string): AsyncIterable<BlobEntry> {
    const base = prefix.replace(/\/+$/, '');
    const s3Prefix = this.prefix + (base === '' ? '' : `${checkKey(base)}/`);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: s3Prefix,
            MaxKeys: this.listPageSize,
            ...(token !== undefined && { ContinuationToken: token }),
          }),
          this.options(),
        );
      } catch (error) {
        throw this.unavailable('list', base === '' ? '(all keys)' : base, error);
      }
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.prefix.length);
        // Objects that are no valid key (written by something else) cannot be addressed through this interface.
        if (key !== undefined && object.Key!.startsWith(this.prefix) && isValidKey(key)) {
          yield { key, size: object.Size ?? 0, modifiedAt: object.LastModified?.getTime() ?? 0 };
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Aborts multipart uploads under the prefix started more than `olderThanMs`
   * ago (uploads whose process died before commit or abort); returns how many
   * (with `dryRun`, only counts them).
   * An upload still running after that long is aborted too: give hours.
   * A server without ListMultipartUploads (it is optional in several S3
   * implementations) answers NotImplemented: then there is nothing this can
   * do and it returns 0 — a bucket lifecycle rule
   * (AbortIncompleteMultipartUpload) is the other way to clean up.
   */
  sweepAbandoned(olderThanMs: number, dryRun = false): Promise<number> {
    return this.sweepIncompleteUploads(olderThanMs, dryRun);
  }

  async sweepIncompleteUploads(olderThanMs: number, dryRun = false): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix,
            MaxUploads: this.listPageSize,
            ...(keyMarker !== undefined && { KeyMarker: keyMarker }),
            ...(uploadIdMarker !== undefined && { UploadIdMarker: uploadIdMarker }),
          }),
          this.options(),
        );
      } catch (error) {
        if (errorName(error) === 'NotImplemented' || httpStatus(error) === 501) return 0;
        throw this.unavailable('list incomplete uploads', '(all keys)', error);
      }
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || !upload.Key.startsWith(this.prefix)) continue;
        // Swift rounds Initiated up to the next second, and clocks differ: callers give hours, not seconds.
        if (!upload.Initiated || upload.Initiated.getTime() > cutoff) continue;
        if (dryRun) {
          removed++;
          continue;
        }
        try {
          await this.abortUpload(upload.Key, upload.UploadId);
        } catch (error) {
          throw this.unavailable('abort the incomplete upload of', upload.Key.slice(this.prefix.length), error);
        }
        removed++;
      }
      if (!page.IsTruncated) return removed;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (keyMarker === undefined && uploadIdMarker === undefined) return removed;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

function isValidKey(key: string): boolean {
  try {
    checkKey(key);
    return true;
  } catch {
    return false;
  }
}

interface WriterParams {
  readonly Bucket: string;
  readonly ContentType: string;
  readonly StorageClass?: StorageClass;
  readonly partSize: number;
  readonly queueSize: number;
}

/**
 * A streamed write: `stream` feeds a lib-storage Upload (parts of partSize,
 * queueSize at a time, so memory stays flat) whose multipart upload targets
 * the final key and completes only on commit. A body smaller than one part
 * becomes a single PutObject, also sent only on commit, when the stream ends.
 */
class S3Writer implements BlobWriter {
  readonly stream: Writable;
  private readonly store: S3Store;
  private readonly key: string;
  private readonly fullKey: string;
  private readonly body: PassThrough;
  private readonly upload: Upload;
  private readonly done: Promise<unknown>;
  private state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  /** Why the upload failed before commit, if it did. */
  private failed: unknown;
  /** Wakes a write waiting for the upload to take more, once the upload has failed. */
  private wake: (() => void) | undefined;
  private aborting: Promise<void> | undefined;

  constructor(store: S3Store, key: string, fullKey: string, params: WriterParams) {
    this.store = store;
    this.key = key;
    this.fullKey = fullKey;
    this.body = new PassThrough({ highWaterMark: MiB });
    // Ours to destroy on abort: its error goes to the upload, never to an unhandled 'error'.
    this.body.on('error', () => {});
    this.upload = new Upload({
      client: store.client,
      params: {
        Bucket: params.Bucket,
        Key: fullKey,
        Body: this.body,
        ContentType: params.ContentType,
        ...(params.StorageClass && { StorageClass: params.StorageClass }),
      },
      partSize: params.partSize,
      queueSize: params.queueSize,
      leavePartsOnError: false,
    });
    this.done = this.upload.done();
    this.done.catch((error: unknown) => this.onUploadFailure(error));

    const writer = this;
    this.stream = new Writable({
      highWaterMark: MiB,
      write(chunk: Buffer, _encoding, callback) {
        writer.forward(chunk, callback);
      },
      final(callback) {
        writer.body.end();
        callback();
      },
    });
  }

  private forward(chunk: Buffer, callback: () => void): void {
    if (this.failed !== undefined || this.state === 'aborted') {
      callback(); // Discarded: commit reports the failure (see onUploadFailure).
      return;
    }
    if (this.body.write(chunk)) {
      callback();
      return;
    }
    const resume = () => {
      this.body.off('drain', resume);
      this.wake = undefined;
      callback();
    };
    this.body.on('drain', resume);
    this.wake = resume;
  }

  /**
   * The upload failed before commit (storage down, say). A caller waiting for
   * 'drain' or piping into the stream has an 'error' listener and hears of it
   * now; otherwise the stream must not emit an unhandled 'error' (a crash) nor
   * leave a write waiting forever, so it takes the rest and discards it, and
   * commit throws.
   */
  private onUploadFailure(error: unknown): void {
    if (this.state !== 'open') return;
    this.failed = error;
    if (this.stream.listenerCount('error') > 0) {
      this.stream.destroy(this.store.failure('write', this.key, error));
    }
    this.wake?.();
  }

  async commit(): Promise<void> {
    if (this.state === 'committed') return;
    if (this.state !== 'open') throw new Error(`blob writer for ${this.key} is ${this.state}`);
    if (this.failed !== undefined) throw this.store.failure('write', this.key, this.failed);
    if (this.stream.destroyed && !this.stream.writableFinished) {
      throw new Error(`blob writer for ${this.key}: the stream was destroyed before commit`);
    }
    this.state = 'committing';
    if (!this.stream.writableEnded) this.stream.end();
    try {
      await this.done;
      this.state = 'committed';
    } catch (error) {
      this.state = 'open';
      this.failed ??= error;
      throw this.store.failure('publish', this.key, error);
    }
  }

  abort(): Promise<void> {
    if (this.state === 'committed') return Promise.resolve();
    this.aborting ??= this.discard();
    return this.aborting;
  }

  private async discard(): Promise<void> {
    this.state = 'aborted';
    this.wake?.();
    this.stream.destroy();
    // The upload reads the error, lets parts in flight finish, and aborts the multipart upload.
    this.body.destroy(new Error('aborted'));
    await this.done.catch(() => {});
    // And again in case that failed or raced with its creation; the sweep is the last resort.
    if (this.upload.uploadId) await this.store.abortUpload(this.fullKey, this.upload.uploadId).catch(() => {});
  }
}
