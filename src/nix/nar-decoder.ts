/**
 * Pull-style NAR decoding and one-pass verification (hash, size, validity,
 * optional listing), both built on the push parser so memory stays flat.
 */
import { createHash } from 'node:crypto';
import { NarListingBuilder, type NarListing } from './nar-listing.ts';
import { NarParser, type NarPath, type NarRegularFile } from './nar-parser.ts';

export type NarEntry = NarDirectoryEntry | NarRegularEntry | NarSymlinkEntry;

export interface NarDirectoryEntry {
  readonly type: 'directory';
  readonly path: NarPath;
}

export interface NarRegularEntry extends NarRegularFile {
  readonly type: 'regular';
  readonly path: NarPath;
  /**
   * The file's bytes. Read them before asking for the next entry: after that
   * they are gone (skipped unread), and iterating this throws.
   */
  readonly contents: AsyncIterable<Buffer>;
}

export interface NarSymlinkEntry {
  readonly type: 'symlink';
  readonly path: NarPath;
  readonly target: Buffer;
}

type RegularHeader = Omit<NarRegularEntry, 'contents'>;
/** Parser output in archive order: entries, with a regular file's content chunks after it. */
type Event = NarDirectoryEntry | RegularHeader | NarSymlinkEntry | Buffer;

/** Yields the archive's entries in order, validating as it goes; throws `NarError` on a malformed NAR. */
export async function* decodeNar(source: AsyncIterable<Buffer>): AsyncGenerator<NarEntry> {
  // Holds the events of one source chunk at most: refilled only once drained.
  const events: Event[] = [];
  let head = 0;
  const parser = new NarParser({
    directory: (path) => events.push({ type: 'directory', path }),
    regular: (path, file) => events.push({ type: 'regular', path, ...file }),
    contents: (chunk) => events.push(chunk),
    symlink: (path, target) => events.push({ type: 'symlink', path, target }),
  });
  const input = source[Symbol.asyncIterator]();

  /** The next event, or undefined once the source is exhausted and the archive complete. */
  async function next(): Promise<Event | undefined> {
    while (head === events.length) {
      events.length = head = 0;
      const chunk = await input.next();
      if (chunk.done) {
        parser.end();
        return undefined;
      }
      parser.push(chunk.value);
    }
    return events[head++];
  }

  try {
    for (let event = await next(); event !== undefined; event = await next()) {
      if (Buffer.isBuffer(event)) continue; // contents the consumer chose not to read
      if (event.type !== 'regular') {
        yield event;
        continue;
      }
      let current = true;
      let left = event.size;
      const contents = async function* (): AsyncGenerator<Buffer> {
        while (left > 0) {
          if (!current) throw new Error('NAR file contents read after moving on to the next entry');
          const chunk = await next();
          if (!Buffer.isBuffer(chunk)) throw new Error('NAR parser ended a file early'); // parser guarantees `size` bytes
          left -= chunk.length;
          yield chunk;
        }
      };
      try {
        yield { ...event, contents: contents() };
      } finally {
        current = false;
      }
    }
  } finally {
    await input.return?.();
  }
}

export interface NarSummary {
  /** Raw sha256 digest of the NAR, as NarHash records it. */
  readonly narHash: Buffer;
  readonly narSize: number;
  /** Present when asked for. */
  readonly listing?: NarListing;
}

export interface NarVerifyOptions {
  /** Also build the `.ls` listing. */
  readonly listing?: boolean;
}

/**
 * Validates, hashes and measures a NAR pushed to it chunk by chunk, e.g. from
 * inside an upload pipeline: `push()` throws `NarError` as soon as the bytes
 * stop being a canonical NAR; `finish()` checks the archive is complete.
 */
export class NarVerifier {
  readonly #hash = createHash('sha256');
  readonly #parser: NarParser;
  readonly #listing: NarListingBuilder | undefined;

  constructor(options: NarVerifyOptions = {}) {
    this.#listing = options.listing ? new NarListingBuilder() : undefined;
    this.#parser = new NarParser(this.#listing ?? {});
  }

  push(chunk: Buffer): void {
    this.#parser.push(chunk);
    this.#hash.update(chunk);
  }

  finish(): NarSummary {
    this.#parser.end();
    const summary = { narHash: this.#hash.digest(), narSize: this.#parser.offset };
    return this.#listing ? { ...summary, listing: this.#listing.listing } : summary;
  }
}

/** Reads a whole NAR, validating it; resolves to its NarHash and NarSize (and listing if asked). */
export async function verifyNar(source: AsyncIterable<Buffer>, options?: NarVerifyOptions): Promise<NarSummary> {
  const verifier = new NarVerifier(options);
  for await (const chunk of source) verifier.push(chunk);
  return verifier.finish();
}
