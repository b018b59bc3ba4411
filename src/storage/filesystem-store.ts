// A blob store in a local directory. Writes go to `.tmp/` under the root (same
// file system) and are renamed into place after fsync, so a crash leaves the
// old file or the new one, plus a temp file that is swept at start-up.

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, opendir, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DestinationClosedError, sendFile } from './file-sender.ts';
import { checkKey, StorageUnavailableError, type BlobEntry, type BlobRange, type BlobStore, type BlobWriter, type OpenBlob } from './blob-store.ts';

const TEMP_DIR = '.tmp';

function unavailable(operation: string, key: string, error: unknown): StorageUnavailableError {
  const code = (error as NodeJS.ErrnoException).code ?? String(error);
  return new StorageUnavailableError(`storage: cannot ${operation} ${key}: ${code}`, { cause: error });
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class FilesystemStore implements BlobStore {
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  static async open(root: string): Promise<FilesystemStore> {
    await mkdir(join(root, TEMP_DIR), { recursive: true });
    return new FilesystemStore(root);
  }

  /** Removes temp files older than `olderThanMs` (uploads that died with their process); with `dryRun`, counts them. */
  async sweepTemp(olderThanMs: number, dryRun = false): Promise<number> {
    const dir = join(this.root, TEMP_DIR);
    let removed = 0;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (isMissing(error)) return 0;
      throw unavailable('list', TEMP_DIR, error);
    }
    for (const name of names) {
      const file = join(dir, name);
      const info = await stat(file).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > olderThanMs) {
        if (!dryRun) await rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }

  sweepAbandoned(olderThanMs: number, dryRun = false): Promise<number> {
    return this.sweepTemp(olderThanMs, dryRun);
  }

  private path(key: string): string {
    return join(this.root, checkKey(key));
  }

  /**
   * A miss is an answer only while the store's directory is there (it always holds `.tmp/`):
   * an unmounted or removed directory must be a 503, not a 404 that tells Nix to build.
   */
  private async absent(operation: string, key: string): Promise<undefined> {
    try {
      await stat(join(this.root, TEMP_DIR));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new StorageUnavailableError(`storage: cannot ${operation} ${key}: the store directory ${this.root} is gone (${code}; not mounted?)`, { cause: error });
    }
    return undefined;
  }

  async stat(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(key))).size;
    } catch (error) {
      if (isMissing(error)) return this.absent('stat', key);
      throw unavailable('stat', key, error);
    }
  }

  async open(key: string, range?: BlobRange): Promise<OpenBlob | undefined> {
    let handle;
    try {
      handle = await open(this.path(key), 'r');
    } catch (error) {
      if (isMissing(error)) return this.absent('open', key);
      throw unavailable('open', key, error);
    }
    let size: number;
    try {
      ({ size } = await handle.stat());
    } catch (error) {
      await handle.close();
      throw unavailable('read', key, error);
    }
    const opened = handle;
    const start = range?.start ?? 0;
    const end = range ? range.end + 1 : size;
    let stream: Readable | undefined;
    return {
      size,
      // Made only when asked for: a download sent with sendTo never needs it.
      get stream() {
        stream ??= createReadStream('', { fd: opened, highWaterMark: 256 * 1024, ...(range && { start: range.start, end: range.end }) });
        return stream;
      },
      sendTo: async (destination) => {
        try {
          await sendFile(opened, start, end, destination);
        } catch (error) {
          if (error instanceof DestinationClosedError) throw error;
          throw unavailable('read', key, error);
        } finally {
          await opened.close().catch(() => {});
        }
      },
    };
  }

  async put(key: string, data: string | Uint8Array): Promise<void> {
    const writer = await this.createWriter(key);
    try {
      writer.stream.write(data);
      await writer.commit();
    } catch (error) {
      await writer.abort();
      throw error instanceof StorageUnavailableError ? error : unavailable('write', key, error);
    }
  }

  async createWriter(key: string): Promise<BlobWriter> {
    const target = this.path(key);
    const temp = join(this.root, TEMP_DIR, `${randomBytes(12).toString('hex')}`);
    let handle;
    try {
      handle = await open(temp, 'wx', 0o644);
    } catch (error) {
      throw unavailable('create a temporary file for', key, error);
    }
    // The disk's failures (ENOSPC, EIO) are what they are, storage unavailable (a 503), never a raw
    // errno a caller could take for a bad upload. A caller waiting for room hears of one at once
    // (through its 'error' listener); otherwise the rest is taken and discarded, so that no write
    // waits forever for a 'drain' that a destroyed stream never emits, and commit() throws it.
    let failure: StorageUnavailableError | undefined;
    const stream: Writable = new Writable({
      highWaterMark: 256 * 1024,
      write: (chunk: Buffer, _encoding, callback) => {
        if (failure) return callback();
        writeAll(handle, [chunk]).then(
          () => callback(),
          (error: unknown) => {
            failure = unavailable('write', key, error);
            callback(stream.listenerCount('drain') > 0 ? failure : undefined);
          },
        );
      },
      // Uploads arrive in 64 KiB socket reads: those queued while a write is in flight go out in one
      // writev, rather than one write (a thread-pool round trip and a promise) each.
      writev: (chunks: { chunk: Buffer }[], callback) => {
        if (failure) return callback();
        writeAll(handle, chunks.map((c) => c.chunk)).then(
          () => callback(),
          (error: unknown) => {
            failure = unavailable('write', key, error);
            callback(stream.listenerCount('drain') > 0 ? failure : undefined);
          },
        );
      },
    });
    // Errors reach the writer through 'drain' waits and commit(); after abort() they are moot.
    // Without a listener, a write failing after destroy() would crash the process.
    stream.on('error', () => {});
    let done = false;
    const closeHandle = async () => {
      if (!done) {
        done = true;
        stream.destroy();
        await handle.close().catch(() => {});
      }
    };
    return {
      stream,
      commit: async () => {
        try {
          if (!stream.writableEnded) stream.end();
          await finished(stream);
          if (failure) throw failure; // a write failed: the file is short, never to be published
          await handle.sync();
          await closeHandle();
          await renameIntoPlace(temp, target);
        } catch (error) {
          await unlink(temp).catch(() => {});
          throw error instanceof StorageUnavailableError ? error : unavailable('publish', key, error);
        }
      },
      abort: async () => {
        await closeHandle();
        await unlink(temp).catch(() => {});
      },
    };
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.path(key));
    } catch (error) {
      if (!isMissing(error)) throw unavailable('delete', key, error);
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const key of keys) await this.delete(key);
  }

  async *list(prefix: string): AsyncIterable<string> {
    const base = prefix.replace(/\/+$/, '');
    yield* walk(join(this.root, checkKey(base)), base);
  }

  async *listEntries(prefix: string): AsyncIterable<BlobEntry> {
    for await (const key of this.list(prefix)) {
      let info;
      try {
        info = await stat(this.path(key));
      } catch (error) {
        if (isMissing(error)) continue; // deleted since the directory was read
        throw unavailable('stat', key, error);
      }
      yield { key, size: info.size, modifiedAt: info.mtimeMs };
    }
  }

  async close(): Promise<void> {}
}

/**
 * Renames first and makes the target's directory only when the rename says it is missing: the
 * directories of a cache exist after its first few files, and a recursive mkdir before every
 * rename cost two thread-pool round trips (mkdir, then a stat of what already existed).
 */
async function renameIntoPlace(temp: string, target: string): Promise<void> {
  try {
    await rename(temp, target);
  } catch (error) {
    if (!isMissing(error)) throw error;
    await mkdir(dirname(target), { recursive: true });
    await rename(temp, target);
  }
}

/** Writes all of `chunks` at the file's current position (a write may take only part of them). */
async function writeAll(handle: FileHandle, chunks: Buffer[]): Promise<void> {
  while (chunks.length > 0) {
    let written = (await handle.writev(chunks)).bytesWritten;
    while (chunks.length > 0 && written >= chunks[0]!.length) written -= chunks.shift()!.length;
    if (written > 0) chunks[0] = chunks[0]!.subarray(written);
  }
}

async function* walk(dir: string, key: string): AsyncIterable<string> {
  let entries;
  try {
    entries = await opendir(dir);
  } catch (error) {
    if (isMissing(error)) return;
    throw unavailable('list', key, error);
  }
  for await (const entry of entries) {
    const child = `${key}/${entry.name}`;
    if (entry.isDirectory()) yield* walk(join(dir, entry.name), child);
    else if (entry.isFile()) yield child;
  }
}
