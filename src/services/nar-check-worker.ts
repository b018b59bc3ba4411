// A worker thread of the NAR check pool (nar-check.ts): checks uploaded NAR
// files, several at a time, each as its bytes arrive: FileHash of the
// compressed bytes, then decompression, NarHash, NarSize and the NAR grammar
// (NarVerifier). Byte batches arrive as transferred buffers and go back the
// same way once consumed, so neither thread allocates per batch.

import { createHash, type Hash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { createDecompressor } from '../compression/decompress.ts';
import type { Compression } from '../nix/compression.ts';
import { NarVerifier } from '../nix/nar-decoder.ts';
import { NarError } from '../nix/nar-parser.ts';
import { noteShortLivedBytes } from './garbage-pacer.ts';

/** What the pool asks of a worker. */
export type CheckRequest =
  | { readonly kind: 'open'; readonly job: number; readonly compression: Compression }
  /** `bytes` is a view of a transferred buffer: its own ArrayBuffer, from offset 0. */
  | { readonly kind: 'bytes'; readonly job: number; readonly bytes: Uint8Array }
  | { readonly kind: 'end'; readonly job: number }
  /** Stop checking (the upload failed): no answer is sent. */
  | { readonly kind: 'drop'; readonly job: number };

/** What a worker answers. */
export type CheckReply =
  /** A batch has been consumed: its buffer comes back for reuse. */
  | { readonly kind: 'consumed'; readonly job: number; readonly bytes: Uint8Array }
  | { readonly kind: 'checked'; readonly job: number; readonly fileHash: Uint8Array; readonly narHash: Uint8Array; readonly narSize: number }
  | { readonly kind: 'failed'; readonly job: number; readonly failure: CheckFailure };

export type CheckFailure =
  | { readonly kind: 'grammar'; readonly offset: number; readonly reason: string }
  | { readonly kind: 'compression'; readonly message: string }
  | { readonly kind: 'internal'; readonly message: string };

const port = parentPort;
if (!port) throw new Error('nar-check-worker.ts runs as a worker thread of nar-check.ts');

function reply(message: CheckReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** One NAR being checked. */
class Check {
  readonly #job: number;
  readonly #verifier = new NarVerifier();
  /** Absent for uncompressed NARs, whose FileHash is their NarHash. */
  readonly #fileHasher: Hash | undefined;
  readonly #decompressor: Duplex | undefined;
  /**
   * xz (a web stream) and bzip2 (a child's stdin) may still hold a chunk after
   * the write callback, which only says it was queued: they get a copy, so the
   * batch can go back. zlib (zstd, gzip, brotli) is done with its input by the
   * time it calls back.
   */
  readonly #copiesInput: boolean;
  #over = false;

  constructor(job: number, compression: Compression) {
    this.#job = job;
    this.#copiesInput = compression === 'xz' || compression === 'bzip2';
    if (compression === 'none') return;
    this.#fileHasher = createHash('sha256');
    const decompressor = createDecompressor(compression);
    decompressor.on('data', (chunk: Buffer) => {
      if (!this.#over) this.#guard(() => this.#verifier.push(chunk));
      // A fresh 1 MiB buffer, dead once hashed and parsed.
      noteShortLivedBytes(chunk.length);
    });
    decompressor.once('end', () => this.#finish());
    decompressor.once('error', (error: Error) => this.#fail({ kind: 'compression', message: error.message }));
    this.#decompressor = decompressor;
  }

  bytes(bytes: Uint8Array): void {
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const giveBack = () => reply({ kind: 'consumed', job: this.#job, bytes }, [bytes.buffer as ArrayBuffer]);
    if (this.#over) return giveBack();
    if (this.#decompressor) {
      this.#fileHasher!.update(chunk);
      // The callback comes once the decompressor is done with the input (or has queued its copy).
      this.#decompressor.write(this.#copiesInput ? Buffer.from(chunk) : chunk, giveBack);
      return;
    }
    this.#guard(() => this.#verifier.push(chunk));
    giveBack();
  }

  end(): void {
    if (this.#over) return;
    if (this.#decompressor) this.#decompressor.end();
    else this.#finish();
  }

  drop(): void {
    this.#over = true;
    this.#decompressor?.destroy();
  }

  #finish(): void {
    if (this.#over) return;
    this.#guard(() => {
      const { narHash, narSize } = this.#verifier.finish();
      const fileHash = this.#fileHasher ? this.#fileHasher.digest() : narHash;
      this.#over = true;
      checks.delete(this.#job);
      reply({ kind: 'checked', job: this.#job, fileHash: new Uint8Array(fileHash), narHash: new Uint8Array(narHash), narSize });
    });
  }

  #guard(action: () => void): void {
    try {
      action();
    } catch (error) {
      if (error instanceof NarError) this.#fail({ kind: 'grammar', offset: error.offset, reason: error.reason });
      else this.#fail({ kind: 'internal', message: (error as Error)?.message ?? String(error) });
    }
  }

  #fail(failure: CheckFailure): void {
    if (this.#over) return;
    this.drop();
    checks.delete(this.#job);
    reply({ kind: 'failed', job: this.#job, failure });
  }
}

const checks = new Map<number, Check>();

port.on('message', (request: CheckRequest) => {
  switch (request.kind) {
    case 'open':
      checks.set(request.job, new Check(request.job, request.compression));
      return;
    case 'bytes': {
      const check = checks.get(request.job);
      // A check that failed already: the buffer still goes back.
      if (check) check.bytes(request.bytes);
      else reply({ kind: 'consumed', job: request.job, bytes: request.bytes }, [request.bytes.buffer as ArrayBuffer]);
      return;
    }
    case 'end':
      checks.get(request.job)?.end();
      return;
    case 'drop':
      checks.get(request.job)?.drop();
      checks.delete(request.job);
      return;
  }
});
