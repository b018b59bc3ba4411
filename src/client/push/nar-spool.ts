// A store path made ready to upload: its NAR encoded by larder's own encoder,
// zstd-compressed in-process and hashed (NarHash before, FileHash after
// compression) in the same pass. The URL of a NAR names its FileHash, so the
// compressed bytes are kept until the upload: in memory when small, in a
// temporary file otherwise, so memory stays flat for a path of any size.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createZstdCompress } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { encodeNar } from '../../nix/nar-encoder.ts';
import { encodeNix32 } from '../../nix/nix32.ts';

export interface SpooledNar {
  /** nix32 sha256 of the compressed file. */
  readonly fileHash: string;
  readonly fileSize: number;
  readonly narHash: Buffer;
  readonly narSize: number;
  /** A fresh stream of the compressed bytes (again for every retry). */
  body(): Readable;
  dispose(): Promise<void>;
}

export interface SpoolOptions {
  /** Directory for temporary files. */
  readonly tempDir: string;
  readonly compressionLevel: number;
  /** Compressed NARs up to this size stay in memory. */
  readonly memoryLimit: number;
}

/** Collects bytes in memory up to a limit, then moves them to a temporary file. */
class SpillSink extends Writable {
  readonly chunks: Buffer[] = [];
  size = 0;
  file: { path: string; handle: FileHandle } | undefined;
  private readonly options: SpoolOptions;

  constructor(options: SpoolOptions) {
    super({ highWaterMark: 1024 * 1024 });
    this.options = options;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.size += chunk.length;
    if (!this.file && this.size <= this.options.memoryLimit) {
      this.chunks.push(chunk);
      return done();
    }
    void this.spill(chunk).then(() => done(), done);
  }

  private async spill(chunk: Buffer): Promise<void> {
    if (!this.file) {
      const path = join(this.options.tempDir, `larder-push-${randomBytes(8).toString('hex')}.nar.zst`);
      this.file = { path, handle: await open(path, 'wx', 0o600) };
      for (const held of this.chunks.splice(0)) await this.file.handle.write(held);
    }
    await this.file.handle.write(chunk);
  }

  override _final(done: (error?: Error | null) => void): void {
    if (!this.file) return done();
    void this.file.handle.close().then(() => done(), done);
  }
}

export async function spoolNar(storePath: string, options: SpoolOptions): Promise<SpooledNar> {
  const narHasher = createHash('sha256');
  const fileHasher = createHash('sha256');
  let narSize = 0;
  const sink = new SpillSink(options);
  try {
    await pipeline(
      encodeNar(storePath),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          narHasher.update(chunk);
          narSize += chunk.length;
          yield chunk;
        }
      },
      // 1 MiB output chunks: zlib's default 16 KiB ones cost twice the CPU.
      createZstdCompress({ chunkSize: 1024 * 1024, params: { [constants.ZSTD_c_compressionLevel]: options.compressionLevel } }),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          fileHasher.update(chunk);
          yield chunk;
        }
      },
      sink,
    );
  } catch (error) {
    if (sink.file) await rm(sink.file.path, { force: true });
    throw error;
  }
  const file = sink.file;
  const chunks = sink.chunks;
  return {
    fileHash: encodeNix32(fileHasher.digest()),
    fileSize: sink.size,
    narHash: narHasher.digest(),
    narSize,
    body: () => (file ? createReadStream(file.path, { highWaterMark: 256 * 1024 }) : Readable.from(chunks, { objectMode: false })),
    dispose: async () => {
      if (file) await rm(file.path, { force: true });
    },
  };
}
