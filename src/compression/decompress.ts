// Streaming decompression for every compression a Nix cache may hold.
// zstd, gzip and brotli are node:zlib; xz is liblzma compiled to WebAssembly
// (no native addon to build); bzip2, a legacy format, goes through the
// system's `bzip2` program, since pure-JS decoders are slow and memory-hungry.

import { spawn } from 'node:child_process';
import { Duplex, PassThrough, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createBrotliDecompress, createGunzip, createZstdDecompress } from 'node:zlib';
import type { Compression } from '../nix/compression.ts';

/**
 * zlib's default 16 KiB output chunks cost twice the CPU of 1 MiB ones, in the
 * codec and in everything downstream that handles each chunk (hashing, the NAR
 * parser), and churn the garbage collector.
 */
const CHUNK = 1024 * 1024;

/** The bytes are not valid data of their compression (corrupt, truncated, or another format). */
export class DecompressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecompressionError';
  }
}

/** A transform from compressed to plain bytes; 'none' passes bytes through. */
export function createDecompressor(compression: Compression): Duplex {
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      return createZstdDecompress({ chunkSize: CHUNK });
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
