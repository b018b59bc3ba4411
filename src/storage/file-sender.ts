// Copies part of an open file into a writable (an HTTP response) through two
// pooled buffers at a time: one being read from disk while the other is being
// written to the socket. A read stream allocates a fresh buffer per read, which at NAR
// download rates is most of the server's CPU (allocation and GC) and memory.
// A buffer goes back to the pool only once its write has called back, that is
// once the socket no longer needs its bytes.

import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { BufferPool } from './buffer-pool.ts';

/** 256 KiB chunks; up to 32 buffers kept for the next downloads (more are made when more run at once). */
const buffers = new BufferPool(256 * 1024, 32);

/** The destination went away (the client disconnected) before every byte was written. */
export class DestinationClosedError extends Error {
  /** The code Node's streams give the same event, which the server already treats as "client gone". */
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
  constructor(cause?: unknown) {
    super('the destination closed before the file was sent', { cause });
    this.name = 'DestinationClosedError';
  }
}

/**
 * Writes bytes `start` to `end` (exclusive) of `handle` to `destination` and ends it.
 * Rejects with the read's error when the file cannot be read or is shorter than
 * expected (the destination is then destroyed: a response with a Content-Length
 * must not look complete), and with DestinationClosedError when the destination
 * fails or closes first. Does not close the handle.
 */
export async function sendFile(handle: FileHandle, start: number, end: number, destination: Writable): Promise<void> {
  let position = start;
  // The previous chunk's write: at most one is outstanding while the next is read.
  let writing: Promise<void> | undefined;
  try {
    while (position < end) {
      const buffer = buffers.take();
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffers.size, end - position), position);
      if (bytesRead === 0) throw new Error(`the file ended at byte ${position} of ${end}`);
      position += bytesRead;
      await writing;
      writing = write(destination, buffer.subarray(0, bytesRead)).then(() => buffers.give(buffer));
      // Handled here and awaited after the next read: a client leaving meanwhile is no unhandled rejection.
      writing.catch(() => {});
    }
    await writing;
    if (destination.destroyed) throw new DestinationClosedError();
    destination.end();
    await finished(destination).catch((error: unknown) => {
      throw new DestinationClosedError(error);
    });
  } catch (error) {
    // A write still in flight keeps its buffer (never returned to the pool) until the socket lets go.
    if (!destination.destroyed) destination.destroy();
    throw error;
  }
}

/** One chunk written; settles when the destination is done with its bytes, or has closed. */
function write(destination: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (destination.destroyed) return reject(new DestinationClosedError());
    const onClose = () => reject(new DestinationClosedError());
    destination.once('close', onClose);
    destination.write(chunk, (error) => {
      destination.off('close', onClose);
      if (error) reject(new DestinationClosedError(error));
      else resolve();
    });
  });
}
