// A pool of worker threads (nar-worker.ts) that make store paths ready to
// upload: NAR encoding, NarHash, zstd, FileHash and spooling, off the main
// thread and in parallel. Workers are started on demand up to the pool's size
// and reused across paths; they hold the process open only while they have
// work, and are ended after a while without any.

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** What a worker is asked to do (one store path). */
export interface PrepareJob {
  readonly id: number;
  readonly path: string;
  /** Where to spool the compressed NAR if it outgrows `memoryLimit`; created only then. */
  readonly tempFile: string;
  readonly compressionLevel: number;
  readonly memoryLimit: number;
}

/** A worker's answer: the bytes travel as a transferred ArrayBuffer. */
export type PrepareReply =
  | ({
      readonly ok: true;
      readonly id: number;
      readonly fileHash: string;
      readonly fileSize: number;
      readonly narHash: Uint8Array;
      readonly narSize: number;
    } & ({ readonly bytes: Uint8Array } | { readonly file: string }))
  | { readonly ok: false; readonly id: number; readonly message: string; readonly code?: string };

export interface PrepareOptions {
  /** Directory for temporary files. */
  readonly tempDir: string;
  readonly compressionLevel: number;
  /** Compressed NARs up to this size stay in memory. */
  readonly memoryLimit: number;
}

/** A prepared NAR: hashes and sizes, and the compressed bytes in memory or in a temporary file (the caller's to remove). */
export interface PreparedNar {
  /** nix32 sha256 of the compressed bytes. */
  readonly fileHash: string;
  readonly fileSize: number;
  readonly narHash: Buffer;
  readonly narSize: number;
  readonly kept: { readonly bytes: Buffer } | { readonly file: string };
}

interface Task {
  readonly job: PrepareJob;
  readonly resolve: (prepared: PreparedNar) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  task: Task | undefined;
}

const WORKER = new URL('./nar-worker.ts', import.meta.url);

export interface NarPoolOptions {
  /** Worker threads at most (default: the CPUs available, at least 1). */
  readonly size?: number;
  /** Idle workers are ended after this long without work (default 10 s). */
  readonly idleMs?: number;
}

export class NarPool {
  readonly size: number;
  readonly #idleMs: number;
  readonly #slots = new Set<Slot>();
  readonly #queue: Task[] = [];
  #nextId = 1;
  #idleTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: NarPoolOptions = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? availableParallelism()));
    this.#idleMs = options.idleMs ?? 10_000;
  }

  /** Worker threads running now (busy or idle). */
  get threads(): number {
    return this.#slots.size;
  }

  /**
   * Encodes, hashes, compresses and spools the NAR of `path` in a worker.
   * Rejects with an error naming the path when it cannot be archived.
   */
  prepare(path: string, options: PrepareOptions): Promise<PreparedNar> {
    if (this.#closed) return Promise.reject(new Error(`cannot prepare ${path}: the NAR pool is closed`));
    const job: PrepareJob = {
      id: this.#nextId++,
      path,
      tempFile: join(options.tempDir, `larder-push-${randomBytes(8).toString('hex')}.nar.zst`),
      compressionLevel: options.compressionLevel,
      memoryLimit: options.memoryLimit,
    };
    return new Promise((resolve, reject) => {
      this.#queue.push({ job, resolve, reject });
      this.#dispatch();
    });
  }

  /** Ends every worker; queued and running preparations are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    const closed = (path: string) => new Error(`cannot prepare ${path}: the NAR pool was closed`);
    for (const task of this.#queue.splice(0)) task.reject(closed(task.job.path));
    const slots = [...this.#slots];
    this.#slots.clear();
    for (const slot of slots) if (slot.task) this.#abandon(slot.task, closed(slot.task.job.path));
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  #dispatch(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    while (this.#queue.length > 0) {
      let slot: Slot | undefined;
      for (const candidate of this.#slots) if (!candidate.task) slot = candidate;
      if (!slot) {
        if (this.#slots.size >= this.size) break;
        slot = this.#spawn();
      }
      const task = this.#queue.shift()!;
      slot.task = task;
      slot.worker.ref();
      slot.worker.postMessage(task.job);
    }
    let busy = false;
    for (const slot of this.#slots) busy ||= slot.task !== undefined;
    if (!busy && this.#slots.size > 0) {
      this.#idleTimer = setTimeout(() => this.#endIdle(), this.#idleMs);
      this.#idleTimer.unref();
    }
  }

  #spawn(): Slot {
    // Not the parent's execArgv: some (--input-type, --test…) stop a worker from starting.
    const worker = new Worker(WORKER, { execArgv: [] });
    const slot: Slot = { worker, task: undefined };
    worker.on('message', (reply: PrepareReply) => {
      const task = slot.task;
      slot.task = undefined;
      // An idle worker must not keep the process alive.
      worker.unref();
      if (task) settle(task, reply);
      this.#dispatch();
    });
    worker.on('error', (error) => this.#lost(slot, error));
    worker.on('exit', (code) => this.#lost(slot, new Error(`it exited with code ${code}`)));
    this.#slots.add(slot);
    return slot;
  }

  /** A worker died (an uncaught error, or out of memory): its task fails, others go on. */
  #lost(slot: Slot, error: Error): void {
    if (!this.#slots.delete(slot)) return;
    const task = slot.task;
    slot.task = undefined;
    if (task) this.#abandon(task, new Error(`preparing the NAR of ${task.job.path} failed: the worker thread died: ${error.message}`));
    this.#dispatch();
  }

  #abandon(task: Task, error: Error): void {
    void rm(task.job.tempFile, { force: true }).catch(() => {});
    task.reject(error);
  }

  #endIdle(): void {
    for (const slot of [...this.#slots]) {
      if (slot.task) continue;
      this.#slots.delete(slot);
      void slot.worker.terminate();
    }
  }
}

function settle(task: Task, reply: PrepareReply): void {
  if (!reply.ok) {
    const error: NodeJS.ErrnoException = new Error(reply.message);
    if (reply.code) error.code = reply.code;
    task.reject(error);
    return;
  }
  const { fileHash, fileSize, narSize } = reply;
  const narHash = Buffer.from(reply.narHash.buffer, reply.narHash.byteOffset, reply.narHash.byteLength);
  const kept = 'bytes' in reply ? { bytes: Buffer.from(reply.bytes.buffer, reply.bytes.byteOffset, reply.bytes.byteLength) } : { file: reply.file };
  task.resolve({ fileHash, fileSize, narHash, narSize, kept });
}

let shared: NarPool | undefined;

/** The process's pool, started on first use. */
export function sharedNarPool(): NarPool {
  shared ??= new NarPool();
  return shared;
}
