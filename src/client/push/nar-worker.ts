// A worker thread of the NAR pool (nar-pool.ts): makes one store path ready
// to upload at a time. It encodes the NAR with blocking fs calls, hashes it
// (NarHash), compresses it into a single zstd frame (in one call when the NAR
// fits in one 1 MiB chunk, else through one streaming compressor), hashes the result
// (FileHash) and keeps it in memory up to a limit, else in the temporary file
// the job names. In-memory bytes go back to the main thread as a transferred
// ArrayBuffer, not a copy.

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { constants, createZstdCompress, zstdCompressSync } from 'node:zlib';
import { NarChunkEncoder } from '../../nix/nar-encoder.ts';
import { encodeNix32 } from '../../nix/nix32.ts';
import type { PrepareJob, PrepareReply } from './nar-pool.ts';

const MiB = 1024 * 1024;
// NAR chunks fed to the compressor, and the compressor's output chunks.
const CHUNK_SIZE = MiB;
// The streaming compressor buffers up to this much NAR, so encoding (this
// thread) and compressing (libuv's thread pool) overlap.
const COMPRESS_AHEAD = 4 * MiB;

/** Compressed bytes: in memory up to a limit, then in a temporary file (written with blocking calls). */
class Spill {
  readonly #path: string;
  readonly #memoryLimit: number;
  #chunks: Buffer[] = [];
  #fd: number | undefined;
  #created = false;
  size = 0;

  constructor(path: string, memoryLimit: number) {
    this.#path = path;
    this.#memoryLimit = memoryLimit;
  }

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.#fd === undefined && this.size <= this.#memoryLimit) {
      this.#chunks.push(chunk);
      return;
    }
    if (this.#fd === undefined) {
      this.#fd = openSync(this.#path, 'wx', 0o600);
      this.#created = true;
      for (const held of this.#chunks) writeAll(this.#fd, held);
      this.#chunks = [];
    }
    writeAll(this.#fd, chunk);
  }

  /** The bytes, as one buffer with an ArrayBuffer of its own (to transfer), or the file, closed. */
  finish(): { bytes: Uint8Array } | { file: string } {
    if (this.#fd !== undefined) {
      closeSync(this.#fd);
      this.#fd = undefined;
      return { file: this.#path };
    }
    const only = this.#chunks.length === 1 ? this.#chunks[0]! : undefined;
    // The compressor's output chunks are views of shared 1 MiB buffers: copy
    // them into one exact buffer unless there is just one that owns its buffer.
    if (only && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength) return { bytes: only };
    const bytes = Buffer.allocUnsafeSlow(this.size);
    let at = 0;
    for (const chunk of this.#chunks) at += chunk.copy(bytes, at);
    this.#chunks = [];
    return { bytes };
  }

  discard(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    this.#chunks = [];
    if (this.#created) rmSync(this.#path, { force: true });
  }
}

function writeAll(fd: number, chunk: Buffer): void {
  for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
}

/** NAR chunks this worker's encoders have finished with, reused from one path to the next. */
const spare: Buffer[] = [];

async function prepare(job: PrepareJob): Promise<{ reply: PrepareReply; transfer: ArrayBuffer[] }> {
  const encoder = new NarChunkEncoder(job.path, { chunkSize: CHUNK_SIZE, spare });
  const narHasher = createHash('sha256');
  const fileHasher = createHash('sha256');
  const spill = new Spill(job.tempFile, job.memoryLimit);
  const compressed = (chunk: Buffer): void => {
    fileHasher.update(chunk);
    spill.add(chunk);
  };
  const params = { [constants.ZSTD_c_compressionLevel]: job.compressionLevel };
  let narSize = 0;
  const hashed = (chunk: Buffer): Buffer => {
    narHasher.update(chunk);
    narSize += chunk.length;
    return chunk;
  };
  try {
    const first = encoder.next();
    let chunk = first && encoder.next();
    if (first === undefined || chunk === undefined) {
      // The whole NAR fits in one chunk (most store paths): one call on this
      // thread, no stream, and zstd sizes its tables to the input.
      const nar = hashed(first ?? Buffer.alloc(0));
      compressed(zstdCompressSync(nar, { params, chunkSize: Math.min(CHUNK_SIZE, zstdBound(nar.length)) }));
      encoder.recycle(nar);
    } else {
      // A bigger NAR streams through one compressor (one zstd frame, compressed
      // on libuv's thread pool while this thread encodes the next chunks).
      const compressor = createZstdCompress({
        chunkSize: CHUNK_SIZE,
        params,
        // Passed on to the Transform, though @types/node's ZstdOptions omit it.
        ...{ writableHighWaterMark: COMPRESS_AHEAD },
      });
      const ended = once(compressor, 'end');
      ended.catch(() => {}); // awaited below unless encoding fails first
      compressor.on('data', compressed);
      try {
        for (let next: Buffer | undefined = first; next !== undefined; next = chunk, chunk = encoder.next()) {
          const fed = hashed(next);
          if (!compressor.write(fed, () => encoder.recycle(fed))) await once(compressor, 'drain');
        }
        compressor.end();
        await ended;
      } finally {
        compressor.destroy();
      }
    }
    const kept = spill.finish();
    const reply: PrepareReply = {
      ok: true,
      id: job.id,
      fileHash: encodeNix32(fileHasher.digest()),
      fileSize: spill.size,
      narHash: new Uint8Array(narHasher.digest()),
      narSize,
      ...kept,
    };
    return { reply, transfer: 'bytes' in kept ? [kept.bytes.buffer as ArrayBuffer] : [] };
  } catch (error) {
    encoder.close();
    spill.discard();
    throw error;
  }
}

/** ZSTD_compressBound: the most a single-call compression can output, give or take its frame header. */
function zstdBound(size: number): number {
  return size + (size >> 8) + 1024;
}

function failure(job: PrepareJob, error: unknown): PrepareReply {
  const { message = String(error), code } = error as NodeJS.ErrnoException;
  // Errors from the encoder name the file; others (a failed write of the temporary file) get the path.
  return { ok: false, id: job.id, message: message.includes(job.path) ? message : `${job.path}: ${message}`, ...(code && { code }) };
}

const port = parentPort;
if (!port) throw new Error('nar-worker.ts runs as a worker thread of nar-pool.ts');
port.on('message', (job: PrepareJob) => {
  prepare(job).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (error: unknown) => port.postMessage(failure(job, error)),
  );
});
