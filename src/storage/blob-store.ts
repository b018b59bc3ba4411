// The blob store: where each cache's files live, in the standard binary-cache
// layout under the cache's name (`main/nix-cache-info`, `main/<hash>.narinfo`,
// `main/nar/<filehash>.nar.zst`, …), so the store is a valid Nix cache on its own.

import type { Readable, Writable } from 'node:stream';

export interface BlobRange {
  readonly start: number;
  /** Inclusive, as in HTTP. */
  readonly end: number;
}

export interface OpenBlob {
  /** The whole blob's size, whatever the range. */
  readonly size: number;
  /** The bytes (of the range); use this or sendTo, not both. */
  readonly stream: Readable;
  /**
   * Where a store has a cheaper way than `stream` to copy the bytes into a writable (an HTTP
   * response), it offers it: writes them, ends the destination, and releases the blob.
   */
  sendTo?(destination: Writable): Promise<void>;
}

export interface BlobWriter {
  /** Write the bytes here (do not end it); nothing is visible under the key yet. */
  readonly stream: Writable;
  /** Ends the stream, waits until every byte is stored, and publishes atomically under the key. */
  commit(): Promise<void>;
  /** Drop what was written; safe to call after a failure, and twice. */
  abort(): Promise<void>;
}

/** A stored blob as a listing shows it. */
export interface BlobEntry {
  readonly key: string;
  readonly size: number;
  /** When it was last written, ms. */
  readonly modifiedAt: number;
}

export interface BlobStore {
  /** The blob's size, or undefined when absent. */
  stat(key: string): Promise<number | undefined>;
  /** A stream of the blob (or of a range of it), or undefined when absent. */
  open(key: string, range?: BlobRange): Promise<OpenBlob | undefined>;
  /** Writes a small blob atomically. */
  put(key: string, data: string | Uint8Array): Promise<void>;
  /** Starts a streamed write that becomes visible only on commit. */
  createWriter(key: string): Promise<BlobWriter>;
  delete(key: string): Promise<void>;
  /** Deletes several keys (absent ones are fine). */
  deleteMany(keys: readonly string[]): Promise<void>;
  /** Keys under a prefix, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** Blobs under a prefix with their size and time, in no particular order. */
  listEntries(prefix: string): AsyncIterable<BlobEntry>;
  /**
   * Removes what writes that died left behind, older than `olderThanMs` (temporary files;
   * unfinished multipart uploads); with `dryRun`, only counts them. Returns how many.
   */
  sweepAbandoned(olderThanMs: number, dryRun?: boolean): Promise<number>;
  close(): Promise<void>;
}

/** Storage cannot answer now (disk error, bucket unreachable): a 503, never a 404. */
export class StorageUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}

const SAFE_KEY = /^[A-Za-z0-9+\-._?=][A-Za-z0-9+\-._?=/]*$/;

/** Refuses keys that could leave the store's root: callers build keys from validated parts, this is the backstop. */
export function checkKey(key: string): string {
  if (!SAFE_KEY.test(key) || key.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`invalid blob key '${key}'`);
  }
  return key;
}
