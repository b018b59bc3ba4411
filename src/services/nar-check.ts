// Checks uploaded NAR files: FileHash, decompression, NarHash, NarSize and
// the NAR grammar. Compressed ones are checked off the main thread, in a pool
// of worker threads (nar-check-worker.ts), so the event loop only moves bytes
// and several uploads are checked in parallel; uncompressed ones, which need
// one hash and the parser, right here.
//
// Why not on the main thread: besides the CPU it frees, every buffer a stream
// stage allocates counts towards V8's old-generation limit, and a process
// with a few MiB of live heap then runs a full mark-compact every ~10 MiB of
// NAR. The workers' heaps are tiny, so their collections cost next to nothing,
// and the batches travel back and forth as transferred buffers, allocated
// once.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DecompressionError } from '../compression/decompress.ts';
import type { Compression } from '../nix/compression.ts';
import { NarVerifier } from '../nix/nar-decoder.ts';
import { NarError } from '../nix/nar-parser.ts';
import { encodeNix32 } from '../nix/nix32.ts';
import { BufferPool } from '../storage/buffer-pool.ts';
import type { CheckFailure, CheckReply, CheckRequest } from './nar-check-worker.ts';

/** Bytes per batch sent to a worker. */
const BATCH = 1024 * 1024;
/** Batches one check may have in flight; bounds memory per upload (and lets hashing and decompression overlap). */
const IN_FLIGHT = 4;
/** Spare batch buffers kept for later checks. */
const SPARE_BUFFERS = 4;

export interface CheckedNar {
  /** nix32 sha256 of the bytes as uploaded. */
  readonly fileHash: string;
  readonly fileSize: number;
  /** Raw sha256 digest of the decompressed NAR. */
  readonly narHash: Buffer;
  readonly narSize: number;
}

/**
 * The check of one uploaded NAR file: `push()` its bytes as they arrive,
 * then `finish()`. A malformed NAR rejects with `NarError`, bytes that do not
 * decompress with `DecompressionError`, as soon as the check finds out.
 */
export interface NarCheck {
  /** Takes the next bytes (copied or consumed: the caller may reuse `chunk`); resolves when there is room for more. */
  push(chunk: Buffer): Promise<void>;
  /** Resolves with the file's and the NAR's hashes and sizes once every byte is checked. */
  finish(): Promise<CheckedNar>;
  /** Stops the check (the upload failed or was refused); safe to call at any time, and twice. */
  abandon(): void;
}

/**
 * An uncompressed NAR is checked on the calling thread: it allocates nothing
 * per chunk (the garbage that decompression makes is what the workers are
 * for), it is its own FileHash (hashed once), and a worker's memory would be
 * spent for one hash.
 */
class InlineCheck implements NarCheck {
  readonly #verifier = new NarVerifier();
  #fileSize = 0;
  #closed = false;

  async push(chunk: Buffer): Promise<void> {
    if (this.#closed) throw new Error('NAR check used after it ended');
    this.#fileSize += chunk.length;
    this.#run(() => this.#verifier.push(chunk));
  }

  async finish(): Promise<CheckedNar> {
    if (this.#closed) throw new Error('NAR check used after it ended');
    const { narHash, narSize } = this.#run(() => this.#verifier.finish());
    this.#closed = true;
    return { fileHash: encodeNix32(narHash), fileSize: this.#fileSize, narHash, narSize };
  }

  abandon(): void {
    this.#closed = true;
  }

  #run<T>(action: () => T): T {
    try {
      return action();
    } catch (error) {
      this.#closed = true;
      throw error;
    }
  }
}

/** A compressed NAR, checked by a worker of the pool. */
class WorkerCheck implements NarCheck {
  readonly #pool: NarCheckPool;
  readonly #slot: Slot;
  readonly #job: number;
  #batch: Buffer | undefined;
  #used = 0;
  #fileSize = 0;
  #inFlight = 0;
  #roomWaiter: (() => void) | undefined;
  #failure: Error | undefined;
  #result: ((reply: Extract<CheckReply, { kind: 'checked' }>) => void) | undefined;
  #resultFailed: ((error: Error) => void) | undefined;
  #closed = false;

  /** @internal use NarCheckPool.start */
  constructor(pool: NarCheckPool, slot: Slot, job: number) {
    this.#pool = pool;
    this.#slot = slot;
    this.#job = job;
  }

  async push(chunk: Buffer): Promise<void> {
    this.#throwIfFailed();
    this.#fileSize += chunk.length;
    for (let at = 0; at < chunk.length; ) {
      this.#batch ??= this.#pool.buffer();
      const n = chunk.copy(this.#batch, this.#used, at);
      this.#used += n;
      at += n;
      if (this.#used === BATCH) await this.#send();
    }
  }

  async finish(): Promise<CheckedNar> {
    this.#throwIfFailed();
    if (this.#used > 0) await this.#send();
    // Checked again: a failure may have come while sending (and no reply comes after one).
    this.#throwIfFailed();
    const checked = new Promise<Extract<CheckReply, { kind: 'checked' }>>((resolve, reject) => {
      this.#result = resolve;
      this.#resultFailed = reject;
    });
    this.#post({ kind: 'end', job: this.#job });
    const reply = await checked;
    this.#close();
    return {
      fileHash: encodeNix32(Buffer.from(reply.fileHash)),
      fileSize: this.#fileSize,
      narHash: Buffer.from(reply.narHash),
      narSize: reply.narSize,
    };
  }

  abandon(): void {
    if (this.#closed) return;
    this.#post({ kind: 'drop', job: this.#job });
    this.#close();
  }

  async #send(): Promise<void> {
    const batch = this.#batch!;
    const bytes = new Uint8Array(batch.buffer, 0, this.#used);
    this.#batch = undefined;
    this.#used = 0;
    this.#inFlight++;
    this.#post({ kind: 'bytes', job: this.#job, bytes }, [batch.buffer as ArrayBuffer]);
    if (this.#inFlight >= IN_FLIGHT) {
      await new Promise<void>((resolve) => (this.#roomWaiter = resolve));
      this.#throwIfFailed();
    }
  }

  #post(request: CheckRequest, transfer: ArrayBuffer[] = []): void {
    this.#slot.worker.postMessage(request, transfer);
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new Error('NAR check used after it ended');
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#batch) this.#pool.recycle(this.#batch);
    this.#batch = undefined;
    this.#pool.ended(this.#slot, this.#job);
  }

  #wake(): void {
    const waiter = this.#roomWaiter;
    this.#roomWaiter = undefined;
    waiter?.();
  }

  /** @internal the pool routes the worker's replies here */
  receive(reply: CheckReply): void {
    switch (reply.kind) {
      case 'consumed':
        this.#inFlight--;
        this.#wake();
        return;
      case 'checked':
        this.#result?.(reply);
        return;
      case 'failed':
        this.fail(rebuild(reply.failure));
        return;
    }
  }

  /** @internal the check failed, in the worker or with it */
  fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#wake();
    this.#resultFailed?.(error);
    this.#close();
  }
}

function rebuild(failure: CheckFailure): Error {
  switch (failure.kind) {
    case 'grammar':
      return new NarError(failure.offset, failure.reason);
    case 'compression':
      return new DecompressionError(failure.message);
    case 'internal':
      return new Error(`checking the NAR failed: ${failure.message}`);
  }
}

interface Slot {
  readonly worker: Worker;
  readonly checks: Map<number, WorkerCheck>;
}

const WORKER = new URL('./nar-check-worker.ts', import.meta.url);

export interface NarCheckPoolOptions {
  /** Worker threads at most (default: one per four CPUs, at least 1). */
  readonly size?: number;
  /** Idle workers end after this long without a check (default 30 s). */
  readonly idleMs?: number;
}

/** Worker threads that check NARs; started on demand, ended when idle, never holding the process open by themselves. */
export class NarCheckPool {
  readonly size: number;
  readonly #idleMs: number;
  readonly #slots = new Set<Slot>();
  readonly #batches = new BufferPool(BATCH, SPARE_BUFFERS);
  #nextJob = 1;

  constructor(options: NarCheckPoolOptions = {}) {
    // Decompression runs on libuv's thread pool; a worker only hashes and parses (~1 GB/s of NAR),
    // and each one keeps tens of MiB of freed buffers until V8 collects them: few are enough.
    this.size = Math.max(1, Math.floor(options.size ?? availableParallelism() / 4));
    this.#idleMs = options.idleMs ?? 30_000;
  }

  /** Worker threads running now. */
  get threads(): number {
    return this.#slots.size;
  }

  /** Starts checking a NAR file: in the least busy worker, or here when it is not compressed. */
  start(compression: Compression): NarCheck {
    if (compression === 'none') return new InlineCheck();
    let slot: Slot | undefined;
    for (const candidate of this.#slots) if (!slot || candidate.checks.size < slot.checks.size) slot = candidate;
    if (!slot || (slot.checks.size > 0 && this.#slots.size < this.size)) slot = this.#spawn();
    const job = this.#nextJob++;
    const check = new WorkerCheck(this, slot, job);
    slot.checks.set(job, check);
    clearTimeout(idleTimers.get(slot));
    slot.worker.ref();
    slot.worker.postMessage({ kind: 'open', job, compression } satisfies CheckRequest);
    return check;
  }

  /** Ends every worker; checks in progress fail. */
  async close(): Promise<void> {
    const slots = [...this.#slots];
    this.#slots.clear();
    for (const slot of slots) this.#lost(slot, new Error('the NAR check pool was closed'));
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  /** @internal a batch buffer: a spare one, or a new one with an ArrayBuffer of its own (to transfer) */
  buffer(): Buffer {
    return this.#batches.take();
  }

  /** @internal */
  recycle(buffer: Buffer): void {
    this.#batches.give(buffer);
  }

  /** @internal a check is over: its worker may go idle */
  ended(slot: Slot, job: number): void {
    slot.checks.delete(job);
    if (slot.checks.size > 0 || !this.#slots.has(slot)) return;
    // Idle: it must not keep the process alive, and it ends after a while.
    slot.worker.unref();
    const timer = setTimeout(() => {
      if (slot.checks.size > 0 || !this.#slots.delete(slot)) return;
      void slot.worker.terminate();
    }, this.#idleMs);
    timer.unref();
    idleTimers.set(slot, timer);
  }

  #spawn(): Slot {
    // Not the parent's execArgv: some (--input-type, --test…) stop a worker from starting.
    const worker = new Worker(WORKER, { execArgv: [] });
    const slot: Slot = { worker, checks: new Map() };
    worker.on('message', (reply: CheckReply) => {
      if (reply.kind === 'consumed') this.recycle(Buffer.from(reply.bytes.buffer));
      slot.checks.get(reply.job)?.receive(reply);
    });
    worker.on('error', (error) => this.#lost(slot, error));
    worker.on('exit', (code) => this.#lost(slot, new Error(`it exited with code ${code}`)));
    this.#slots.add(slot);
    return slot;
  }

  /** A worker died (an uncaught error, or out of memory): its checks fail, others go on. */
  #lost(slot: Slot, error: Error): void {
    this.#slots.delete(slot);
    for (const check of [...slot.checks.values()]) check.fail(new Error(`checking the NAR failed: its worker thread died: ${error.message}`));
    slot.checks.clear();
  }
}

const idleTimers = new WeakMap<Slot, NodeJS.Timeout>();

let shared: NarCheckPool | undefined;

/** The process's pool, started on first use. */
export function sharedNarCheckPool(): NarCheckPool {
  shared ??= new NarCheckPool();
  return shared;
}
