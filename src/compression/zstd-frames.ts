// Where the frames of a zstd stream end (RFC 8878, section 3.1), found from
// the headers alone: a stream may hold several frames, one after another,
// and every decoder of the format must read them all (Nix does). Node's zstd
// decompressor stops at the end of a frame, unless its output buffer happens
// to be full there, and drops the rest of that write's input: larder hands it
// each frame's bytes in writes of their own. It is also how bytes after the
// last frame that are not a frame (padding, a stray newline) are refused
// rather than silently ignored.

import { DecompressionError } from './decompression-error.ts';

const FRAME_MAGIC = 0xfd2fb528;
// Skippable frames carry no data for the decoder: magic 0x184D2A50 to 0x184D2A5F.
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

/** The next fixed-size field to read, and how many bytes it has. */
type Field = 'magic' | 'descriptor' | 'block-header' | 'skippable-size';
const FIELD_SIZE: Readonly<Record<Field, number>> = { magic: 4, descriptor: 1, 'block-header': 3, 'skippable-size': 4 };

/**
 * Splits a zstd stream, given in chunks of any size, into pieces that never
 * run past the end of a frame: each piece ends where its chunk ends or where
 * a frame ends. Throws a DecompressionError naming the byte offset when the
 * bytes are not a sequence of zstd frames.
 */
export class ZstdFrameSplitter {
  #field: Field = 'magic';
  readonly #bytes = Buffer.alloc(4);
  #have = 0;
  /** Bytes to pass over (header fields, block contents, checksum) before the next field. */
  #skip = 0;
  /** Whether the frame ends once `#skip` bytes have passed. */
  #endsAfterSkip = false;
  /** In the current frame: whether a 4-byte checksum follows its last block. */
  #checksum = false;
  /** Bytes seen so far, for error messages. */
  #offset = 0;
  #frames = 0;

  /** Whole frames seen so far. */
  get frames(): number {
    return this.#frames;
  }

  split(chunk: Buffer): Buffer[] {
    const pieces: Buffer[] = [];
    let start = 0;
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - at);
        this.#skip -= n;
        at += n;
        this.#offset += n;
        if (this.#skip === 0 && this.#endsAfterSkip) {
          this.#frameEnded();
          pieces.push(chunk.subarray(start, at));
          start = at;
        }
        continue;
      }
      const want = FIELD_SIZE[this.#field] - this.#have;
      const n = Math.min(want, chunk.length - at);
      chunk.copy(this.#bytes, this.#have, at, at + n);
      this.#have += n;
      at += n;
      this.#offset += n;
      if (this.#have < FIELD_SIZE[this.#field]) break;
      this.#have = 0;
      if (this.#read()) {
        this.#frameEnded();
        pieces.push(chunk.subarray(start, at));
        start = at;
      }
    }
    if (start < chunk.length) pieces.push(start === 0 ? chunk : chunk.subarray(start));
    return pieces;
  }

  /** Throws unless the stream ended right after a frame (an empty stream included: the decoder says what it makes of that). */
  finish(): void {
    if (this.#field !== 'magic' || this.#have > 0 || this.#skip > 0) {
      throw new DecompressionError(`zstd data ends in the middle of a frame (after ${this.#offset} bytes): it is truncated`);
    }
  }

  /** Acts on a complete field; true when it ends the frame. */
  #read(): boolean {
    const at = this.#offset - FIELD_SIZE[this.#field];
    switch (this.#field) {
      case 'magic': {
        const magic = this.#bytes.readUInt32LE(0);
        if (magic === FRAME_MAGIC) {
          this.#field = 'descriptor';
        } else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.#field = 'skippable-size';
        } else {
          const what = this.#frames === 0 ? 'is not zstd data' : `has ${this.#frames} zstd frame(s) followed by bytes that are not a frame`;
          throw new DecompressionError(`the file ${what} (at byte ${at}: ${this.#bytes.toString('hex')})`);
        }
        return false;
      }
      case 'descriptor': {
        const descriptor = this.#bytes[0]!;
        if (descriptor & 0x08) throw new DecompressionError(`zstd frame header at byte ${at} sets its reserved bit`);
        const contentSizeFlag = descriptor >> 6;
        const singleSegment = (descriptor & 0x20) !== 0;
        this.#checksum = (descriptor & 0x04) !== 0;
        const dictionaryIdBytes = [0, 1, 2, 4][descriptor & 0x03]!;
        const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
        this.#skip = (singleSegment ? 0 : 1) + dictionaryIdBytes + contentSizeBytes;
        this.#field = 'block-header';
        return false;
      }
      case 'block-header': {
        const header = this.#bytes[0]! | (this.#bytes[1]! << 8) | (this.#bytes[2]! << 16);
        const last = (header & 1) === 1;
        const type = (header >> 1) & 3;
        if (type === 3) throw new DecompressionError(`zstd block at byte ${at} has the reserved block type`);
        // An RLE block holds one byte, repeated Block_Size times when decoded.
        this.#skip = type === 1 ? 1 : header >>> 3;
        if (!last) return false;
        this.#skip += this.#checksum ? 4 : 0;
        this.#field = 'magic';
        this.#endsAfterSkip = this.#skip > 0;
        return this.#skip === 0;
      }
      case 'skippable-size': {
        this.#skip = this.#bytes.readUInt32LE(0);
        this.#field = 'magic';
        this.#endsAfterSkip = this.#skip > 0;
        return this.#skip === 0;
      }
    }
  }

  #frameEnded(): void {
    this.#endsAfterSkip = false;
    this.#frames++;
  }
}
