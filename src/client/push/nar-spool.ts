// A store path made ready to upload: its NAR encoded by larder's own encoder,
// zstd-compressed and hashed (NarHash before, FileHash after compression) in
// one pass, in a worker thread of the NAR pool (nar-pool.ts, nar-worker.ts).
// The URL of a NAR names its FileHash, so the compressed bytes are kept until
// the upload: in memory when small, in a temporary file otherwise, so memory
// stays flat for a path of any size.

import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { sharedNarPool, type NarPool } from './nar-pool.ts';

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

// Large reads of a spooled file: fewer, bigger writes to the socket.
const READ_CHUNK = 1024 * 1024;

export async function spoolNar(storePath: string, options: SpoolOptions, pool: NarPool = sharedNarPool()): Promise<SpooledNar> {
  const { fileHash, fileSize, narHash, narSize, kept } = await pool.prepare(storePath, options);
  if ('file' in kept) {
    const { file } = kept;
    return {
      fileHash,
      fileSize,
      narHash,
      narSize,
      body: () => createReadStream(file, { highWaterMark: READ_CHUNK }),
      dispose: () => rm(file, { force: true }),
    };
  }
  const { bytes } = kept;
  return {
    fileHash,
    fileSize,
    narHash,
    narSize,
    body: () => Readable.from([bytes], { objectMode: false }),
    dispose: async () => {},
  };
}
