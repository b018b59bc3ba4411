// Streaming decompression for every compression a Nix cache may hold.
// zstd, gzip and brotli are node:zlib; xz is liblzma compiled to WebAssembly
// (no native addon to build); bzip2, a legacy format, goes through the
// system's `bzip2` program, since pure-JS decoders are slow and memory-hungry.

import { spawn } from 'node:child_process';
import { Duplex, PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createBrotliDecompress, createGunzip, createZstdDecompress } from 'node:zlib';
import type { Compression } from '../nix/compression.ts';
import { ZstdFrameSplitter } from './zstd-frames.ts';

export { DecompressionError } from './decompression-error.ts';

/**
 * zlib's default 16 KiB output chunks cost twice the CPU of 1 MiB ones, in the
 * codec and in everything downstream that handles each chunk (hashing, the NAR
 * parser), and churn the garbage collector.
 */
const CHUNK = 1024 * 1024;

/** A transform from compressed to plain bytes; 'none' passes bytes through. */
export function createDecompressor(compression: Compression): Duplex {
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      return new ZstdDecompressor();
    case 'gzip':
      return createGunzip({ chunkSize: CHUNK });
    case 'br':
      return createBrotliDecompress({ chunkSize: CHUNK });
    case 'xz':
      return xzDecompressor();
    case 'bzip2':
      return bzip2Decompressor();
  }
}

/**
 * zstd, every frame of it: node:zlib's decoder, given each frame's bytes in
 * writes of their own (see zstd-frames.ts). A write's callback comes once the
 * decoder is done with all of its bytes, as with node:zlib's own streams.
 */
class ZstdDecompressor extends Transform {
  readonly #frames = new ZstdFrameSplitter();
  readonly #decoder = createZstdDecompress({ chunkSize: CHUNK });

  constructor() {
    super();
    this.#decoder.on('data', (chunk: Buffer) => this.push(chunk));
    this.#decoder.on('error', (error) => this.destroy(error));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let pieces: Buffer[];
    try {
      pieces = this.#frames.split(chunk);
    } catch (error) {
      done(error as Error);
      return;
    }
    const write = (index: number): void => {
      if (index === pieces.length) return done();
      this.#decoder.write(pieces[index], (error) => (error ? done(error) : write(index + 1)));
    };
    write(0);
  }

  override _flush(done: TransformCallback): void {
    try {
      this.#frames.finish();
    } catch (error) {
      done(error as Error);
      return;
    }
    this.#decoder.once('end', () => done());
    this.#decoder.end();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.#decoder.destroy();
    done(error);
  }
}

function xzDecompressor(): Duplex {
  const input = new PassThrough();
  const web = Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>;
  // Loaded on first use: its WebAssembly module costs memory that zstd-only servers need not pay.
  const output = Readable.from(
    (async function* () {
      const { default: xz } = await import('xz-decompress');
      yield* Readable.fromWeb(new xz.XzReadableStream(web) as unknown as WebReadableStream<Uint8Array>);
    })(),
    { objectMode: false },
  );
  return Duplex.from({ writable: input, readable: output });
}

function bzip2Decompressor(): Duplex {
  const child = spawn('bzip2', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const output = new PassThrough();
  child.stdout.pipe(output, { end: false });
  const fail = (message: string) => output.destroy(new Error(message));
  child.on('error', (error) => fail(`bzip2 is needed to decompress bzip2 NARs: ${error.message}`));
  // 'close' comes after stdout has been drained into output: only then is
  // the exit code known, so a corrupt stream never looks like a short one.
  child.on('close', (code) => {
    if (code === 0) output.end();
    else fail(`bzip2 data is corrupt: ${stderr.trim() || `exit code ${code}`}`);
  });
  const duplex = Duplex.from({ writable: child.stdin, readable: output });
  duplex.on('close', () => child.kill());
  return duplex;
}
