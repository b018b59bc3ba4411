// A blob store in a local directory. Writes go to `.tmp/` under the root (same
// file system) and are renamed into place after fsync, so a crash leaves the
// old file or the new one, plus a temp file that is swept at start-up.

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, opendir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
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

  async stat(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(key))).size;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw unavailable('stat', key, error);
    }
  }

  async open(key: string, range?: BlobRange): Promise<OpenBlob | undefined> {
    let handle;
    try {
      handle = await open(this.path(key), 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw unavailable('open', key, error);
    }
    try {
      const { size } = await handle.stat();
      const stream = createReadStream('', {
        fd: handle,
        highWaterMark: 256 * 1024,
        ...(range && { start: range.start, end: range.end }),
      });
      return { size, stream };
    } catch (error) {
      await handle.close();
      throw unavailable('read', key, error);
    }
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
    const stream = createWriteStream('', { fd: handle, autoClose: false });
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
          await handle.sync();
          await closeHandle();
          await mkdir(dirname(target), { recursive: true });
          await rename(temp, target);
        } catch (error) {
          await unlink(temp).catch(() => {});
          throw unavailable('publish', key, error);
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
