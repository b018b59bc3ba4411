// One upstream download that any number of clients follow as it arrives. The
// bytes go to a spool file (unlinked at once, so nothing is left behind even
// after a crash) and each follower reads it at its own pace: a slow client
// neither slows the download nor holds memory. The last byte is held back
// until the whole file is verified, so no client ever receives a complete NAR
// that failed verification: a failed download ends every follower with an
// error, which the server turns into a broken connection.

import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';

type State = 'running' | 'verified' | 'failed';

const READ_CHUNK = 256 * 1024;

export class SharedDownload {
  /** Compressed size the upstream announced (FileSize); undefined when it did not say. */
  readonly size: number | undefined;
  readonly #file: FileHandle;
  #length = 0;
  #state: State = 'running';
  #error: Error | undefined;
  #users = 1; // the download itself
  #wake: (() => void) | undefined;
  #changed: Promise<void>;
  #firstByte: Promise<void>;
  #markFirstByte!: () => void;

  private constructor(file: FileHandle, size: number | undefined) {
    this.#file = file;
    this.size = size;
    this.#changed = this.#nextChange();
    this.#firstByte = new Promise((resolve) => (this.#markFirstByte = resolve));
  }

  static async create(spoolDir: string, size: number | undefined): Promise<SharedDownload> {
    const path = join(spoolDir, `mirror-${randomUUID()}`);
    const file = await open(path, 'w+', 0o600);
    await unlink(path);
    return new SharedDownload(file, size);
  }

  get length(): number {
    return this.#length;
  }

  /** Resolves once the first byte is there or the download ended (then check `failure`). */
  started(): Promise<void> {
    return this.#firstByte;
  }

  /** The error that ended the download, once it failed. */
  get failure(): Error | undefined {
    return this.#error;
  }

  async append(chunk: Uint8Array): Promise<void> {
    if (this.#state !== 'running') throw new Error('append after the download ended');
    let written = 0;
    while (written < chunk.length) {
      const { bytesWritten } = await this.#file.write(chunk, written, chunk.length - written, this.#length + written);
      written += bytesWritten;
    }
    this.#length += chunk.length;
    this.#markFirstByte();
    this.#notify();
  }

  /** The whole file is there and verified: followers may read to the end. */
  succeed(): void {
    this.#end('verified');
  }

  fail(error: Error): void {
    this.#error = error;
    this.#end('failed');
  }

  /** A stream of the file from its first byte, following the download; errors if it fails. */
  follow(): Readable {
    // The spool is closed once the download ended and its last follower left.
    if (this.#users === 0) throw new Error('the download has ended; read the stored copy');
    this.#users++;
    let position = 0;
    const download = this;
    async function* read(): AsyncGenerator<Buffer> {
      try {
        for (;;) {
          const state = download.#state;
          if (state === 'failed') throw download.#error!;
          // While running, the last byte stays back: it is released only with the verdict.
          const readable = state === 'verified' ? download.#length : download.#length - 1;
          if (position < readable) {
            const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, readable - position));
            const { bytesRead } = await download.#file.read(buffer, 0, buffer.length, position);
            position += bytesRead;
            yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
          } else if (state === 'verified') {
            return;
          } else {
            await download.#changed;
          }
        }
      } finally {
        download.#release();
      }
    }
    return Readable.from(read(), { objectMode: false });
  }

  #end(state: State): void {
    if (this.#state !== 'running') return;
    this.#state = state;
    this.#markFirstByte();
    this.#notify();
    this.#release();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#changed = this.#nextChange();
    wake?.();
  }

  #nextChange(): Promise<void> {
    return new Promise((resolve) => (this.#wake = resolve));
  }

  #release(): void {
    if (--this.#users === 0) void this.#file.close().catch(() => {});
  }
}
