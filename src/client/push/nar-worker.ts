// A worker thread of the NAR pool (nar-pool.ts): makes one store path ready
// to upload at a time. It encodes the NAR with blocking fs calls, hashes it
// (NarHash), compresses each 4 MiB chunk into a zstd frame of its own (on
// this thread when the NAR is one chunk, else through the thread's one
// streaming compressor on libuv's thread pool, while this thread encodes the
// next chunk), hashes the result (FileHash) and keeps it in memory up to a
// limit, else in the temporary file the job names. In-memory bytes go back to
// the main thread as a transferred ArrayBuffer, not a copy.

import { createHash } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { constants, createZstdCompress, zstdCompressSync, type ZstdCompress } from 'node:zlib';
import { NarChunkEncoder } from '../../nix/nar-encoder.ts';
import { encodeNix32 } from '../../nix/nix32.ts';
import type { PrepareJob, PrepareReply } from './nar-pool.ts';

const MiB = 1024 * 1024;
// NAR chunks, each compressed into one zstd frame.
const CHUNK_SIZE = 4 * MiB;
// A 4 MiB window (the default at level 3 is 2 MiB): a frame's matches may reach back to its
// start, and the streaming compressor never wraps its window within a frame, which is slower.
const WINDOW_LOG = 22;
// Chunks handed to the compressor and not yet back: one compressed while the next is encoded.
const CHUNKS_IN_FLIGHT = 2;
// The compressor's output chunks.
const OUTPUT_CHUNK = MiB;

/** zstd parameters of every frame, whichever way it is compressed. */
function frameParams(level: number): Record<number, number> {
  return { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_windowLog]: WINDOW_LOG };
}

/**
 * This thread's zstd compressor, kept from one NAR to the next: a compression
 * context is a few MiB of tables, and making one per frame left glibc's
 * per-thread arenas holding ~60 MiB each. Each chunk becomes a frame of its
 * own by ending the frame after it (ZSTD_e_end); output goes to `onData`.
 */
class FrameCompressor {
  readonly level: number;
  onData: ((chunk: Buffer) => void) | undefined;
  readonly #stream: ZstdCompress;
  #error: Error | undefined;

  constructor(level: number) {
    this.level = level;
    this.#stream = createZstdCompress({
      chunkSize: OUTPUT_CHUNK,
      params: frameParams(level),
    });
    this.#stream.on('data', (chunk: Buffer) => this.onData?.(chunk));
    this.#stream.on('error', (error) => (this.#error = error));
  }

  /** Settles once `chunk` is a whole frame handed to `onData`, and the compressor is done reading it. */
  frame(chunk: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      this.#stream.write(chunk);
      this.#stream.flush(constants.ZSTD_e_end, () => (this.#error ? reject(this.#error) : resolve()));
    });
  }

  destroy(): void {
    this.#stream.destroy();
  }
}

let compressor: FrameCompressor | undefined;

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
  let narSize = 0;
  const hashed = (chunk: Buffer): Buffer => {
    narHasher.update(chunk);
    narSize += chunk.length;
    return chunk;
  };
  try {
    // One zstd frame per 4 MiB chunk (a zstd file may hold several; Nix and
    // larder read them all). Measured at level 3 against one frame over the
    // same bytes (2 MiB window): 17-32% less CPU, and from 0.4% fewer to 0.7%
    // more bytes (the bench closure, libLLVM, node, a tar of docs).
    const first = encoder.next();
    let chunk = first && encoder.next();
    if (first === undefined || chunk === undefined) {
      // The whole NAR is one chunk (most store paths): one call on this thread.
      const nar = hashed(first ?? Buffer.alloc(0));
      compressed(zstdCompressSync(nar, { params: frameParams(job.compressionLevel), chunkSize: Math.min(CHUNK_SIZE, zstdBound(nar.length)) }));
      encoder.recycle(nar);
    } else {
      if (compressor?.level !== job.compressionLevel) {
        compressor?.destroy();
        compressor = new FrameCompressor(job.compressionLevel);
      }
      const frames = compressor;
      frames.onData = compressed;
      const inFlight: Promise<void>[] = [];
      for (let next: Buffer | undefined = first; next !== undefined; next = chunk, chunk = encoder.next()) {
        const fed = hashed(next);
        const framed = frames.frame(fed).then(() => encoder.recycle(fed));
        framed.catch(() => {}); // awaited in turn below; until then a failure must not count as unhandled
        inFlight.push(framed);
        if (inFlight.length >= CHUNKS_IN_FLIGHT) await inFlight.shift();
      }
      for (const framed of inFlight) await framed;
      frames.onData = undefined;
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
    // It may hold part of a frame: the next NAR gets a fresh one.
    compressor?.destroy();
    compressor = undefined;
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
