// Buffers of one size, kept for reuse: code that moves bytes in fixed-size
// chunks (NAR downloads, the batches sent to the NAR check workers) takes one
// and gives it back once nothing refers to its bytes any more, instead of
// leaving a fresh buffer per chunk to the garbage collector.

export class BufferPool {
  readonly size: number;
  readonly #keep: number;
  readonly #free: Buffer[] = [];

  /** Buffers of `size` bytes; at most `keep` are held between uses (more are made when needed, and dropped). */
  constructor(size: number, keep: number) {
    this.size = size;
    this.#keep = keep;
  }

  /** A buffer of the pool's size with an ArrayBuffer of its own (so that it can be transferred). */
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Back for reuse; kept when there is room and it spans a whole ArrayBuffer of the pool's size. */
  give(buffer: Buffer): void {
    if (this.#free.length < this.#keep && buffer.byteOffset === 0 && buffer.length === this.size && buffer.buffer.byteLength === this.size) {
      this.#free.push(buffer);
    }
  }
}
