/**
 * Incremental NAR (Nix ARchive) parser and validator.
 *
 * Bytes are pushed in chunks of any size; the parser reports what it finds to
 * a visitor as it goes and never accumulates file contents, so memory stays
 * flat however large the archive. It accepts only canonical NARs (the grammar
 * of Nix's archive.cc with sorted entries and zero padding), so a NAR that
 * passes is the only possible serialisation of the tree it describes.
 *
 * Paths are arrays of raw name bytes from the root down (`[]` is the root):
 * names in a NAR need not be UTF-8, and a `/`-joined string would lose that.
 */

/** Location of a node in the archive: entry names from the root down. */
export type NarPath = readonly Buffer[];

export interface NarRegularFile {
  readonly executable: boolean;
  readonly size: number;
  /** Offset in the NAR of the first byte of the file's contents. */
  readonly narOffset: number;
}

/** Callbacks fired in archive order; a directory's entries come between `directory` and `endDirectory`. */
export interface NarVisitor {
  directory?(path: NarPath): void;
  /** Announces a regular file; its `size` bytes then arrive through `contents`. */
  regular?(path: NarPath, file: NarRegularFile): void;
  /** A piece of the current file's contents: a view into the pushed chunk, not a copy. */
  contents?(chunk: Buffer): void;
  symlink?(path: NarPath, target: Buffer): void;
  endDirectory?(path: NarPath): void;
}

export class NarError extends Error {
  /** Offset in the NAR of the offending token or byte. */
  readonly offset: number;
  /** What is wrong there, without the offset (to rebuild the error on another thread). */
  readonly reason: string;

  constructor(offset: number, reason: string) {
    super(`NAR byte ${offset}: ${reason}`);
    this.name = 'NarError';
    this.offset = offset;
    this.reason = reason;
  }
}

// The limits recent Nix enforces on decode (NAME_MAX, PATH_MAX - 1); nesting is capped only to bound the directory stack.
export const MAX_NAME_LENGTH = 255;
export const MAX_TARGET_LENGTH = 4095;
export const MAX_DEPTH = 256;

/**
 * What the grammar asks the byte pump for next: a `str(...)` token of at most
 * `limit` bytes (a longer one is rejected before it is read, so a corrupt
 * length costs nothing), or a regular file's contents, which the pump reports
 * and streams to the visitor itself.
 */
type Request = TokenRequest | FileRequest;
interface TokenRequest {
  readonly limit: number;
  /** Completes "expected …" in the error for an over-long token. */
  readonly expected: string;
}
interface FileRequest {
  readonly path: NarPath;
  readonly executable: boolean;
}
// Keywords are short; 64 bytes still lets an error quote a wrong one.
const MAGIC: TokenRequest = { limit: 64, expected: 'the magic "nix-archive-1"' };
const KEYWORD: TokenRequest = { limit: 64, expected: 'a keyword' };
const NAME: TokenRequest = { limit: MAX_NAME_LENGTH, expected: `a file name of at most ${MAX_NAME_LENGTH} bytes` };
const TARGET: TokenRequest = { limit: MAX_TARGET_LENGTH, expected: `a symlink target of at most ${MAX_TARGET_LENGTH} bytes` };

/** Receives each requested token, valid only until its next yield. */
type Grammar = Generator<Request, void, Buffer>;

/** What the byte pump is reading: a token's length field or bytes, or a file's size, contents or padding. */
type Phase = 'length' | 'token' | 'size' | 'contents' | 'padding';

const EMPTY = Buffer.alloc(0);

export class NarParser {
  readonly #visitor: NarVisitor;
  readonly #grammar: Grammar;
  // Holds bytes split across chunks; nothing collected is longer than a padded symlink target.
  readonly #scratch = Buffer.allocUnsafe(padded(MAX_TARGET_LENGTH));
  #phase: Phase = 'length';
  #token: TokenRequest = MAGIC;
  #file: FileRequest | undefined;
  /** Bytes the current phase collects, and how many of them sit in #scratch. */
  #want = 8;
  #have = 0;
  /** Length of the string being read: a token or a file's contents. */
  #length = 0;
  #streaming = 0;
  /** Where the token the grammar is looking at began, for errors. */
  #tokenAt = 0;
  #offset = 0;
  #done = false;
  #failure: unknown;

  constructor(visitor: NarVisitor) {
    this.#visitor = visitor;
    this.#grammar = this.#archive();
    this.#resume(EMPTY);
  }

  /** Bytes consumed so far; the NAR size once `end()` has succeeded. */
  get offset(): number {
    return this.#offset;
  }

  push(chunk: Buffer): void {
    this.#guard(() => this.#feed(chunk));
  }

  /** Declares the input complete; throws if the archive is unfinished. */
  end(): void {
    this.#guard(() => {
      if (!this.#done) throw new NarError(this.#offset, 'unexpected end of archive');
    });
  }

  // A failure leaves the parser mid-token, so it sticks.
  #guard(action: () => void): void {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      action();
    } catch (error) {
      this.#failure = error;
      throw error;
    }
  }

  // ---- Byte pump: cuts chunks into tokens without copying, except tokens
  // split across chunks, and streams file contents past as views.

  #feed(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#done) throw new NarError(this.#offset, 'trailing data after the end of the archive');
      const available = chunk.length - pos;
      if (this.#phase === 'contents') {
        const n = Math.min(this.#streaming, available);
        this.#visitor.contents?.(chunk.subarray(pos, pos + n));
        pos += n;
        this.#offset += n;
        this.#streaming -= n;
        if (this.#streaming === 0) this.#collect('padding', padding(this.#length));
      } else if (this.#have === 0 && available >= this.#want) {
        const start = pos;
        pos += this.#want;
        this.#offset += this.#want;
        this.#received(chunk, start);
      } else {
        const n = Math.min(this.#want - this.#have, available);
        chunk.copy(this.#scratch, this.#have, pos, pos + n);
        pos += n;
        this.#offset += n;
        this.#have += n;
        if (this.#have === this.#want) {
          this.#have = 0;
          this.#received(this.#scratch, 0);
        }
      }
    }
  }

  #collect(phase: Phase, bytes: number): void {
    this.#phase = phase;
    this.#want = bytes;
    if (bytes === 0) this.#received(EMPTY, 0);
  }

  /** Acts on the `#want` bytes at `bytes[start]`, which end at the current offset. */
  #received(bytes: Buffer, start: number): void {
    const end = start + this.#want;
    switch (this.#phase) {
      case 'length': {
        const length = readLength(bytes, start, this.#tokenAt);
        if (length > this.#token.limit) {
          throw new NarError(this.#tokenAt, `expected ${this.#token.expected}, found a ${length}-byte string`);
        }
        this.#length = length;
        this.#collect('token', padded(length));
        return;
      }
      case 'token':
        this.#checkPadding(bytes, start + this.#length, end);
        this.#resume(bytes.subarray(start, start + this.#length));
        return;
      case 'size': {
        const { path, executable } = this.#file!;
        const size = readLength(bytes, start, this.#tokenAt);
        this.#visitor.regular?.(path, { executable, size, narOffset: this.#offset });
        this.#length = this.#streaming = size;
        if (size > 0) this.#phase = 'contents';
        else this.#collect('padding', 0);
        return;
      }
      case 'padding':
        this.#checkPadding(bytes, start, end);
        this.#resume(EMPTY);
        return;
    }
  }

  /** Runs the grammar up to its next request and starts collecting for it. */
  #resume(input: Buffer): void {
    const step = this.#grammar.next(input);
    if (step.done) {
      this.#done = true;
      return;
    }
    const request = step.value;
    this.#tokenAt = this.#offset;
    if ('path' in request) {
      this.#file = request;
      this.#collect('size', 8);
    } else {
      this.#token = request;
      this.#collect('length', 8);
    }
  }

  #checkPadding(bytes: Buffer, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      if (bytes[i] !== 0) throw new NarError(this.#offset - (to - i), 'non-zero padding');
    }
  }

  // ---- Grammar: archive.cc's parse(), with an explicit stack of open
  // directories instead of recursion. Tokens it keeps are copied.

  *#archive(): Grammar {
    const magic = yield MAGIC;
    if (!isWord(magic, 'nix-archive-1')) throw new NarError(0, `not a NAR: bad magic ${quote(magic)}`);
    const directories: { readonly path: NarPath; previous: Buffer | undefined }[] = [];
    let path: NarPath = [];
    for (;;) {
      this.#expect(yield KEYWORD, '(');
      this.#expect(yield KEYWORD, 'type');
      const type = yield KEYWORD;
      let complete = true;
      if (isWord(type, 'regular')) {
        yield* this.#regular(path);
      } else if (isWord(type, 'symlink')) {
        yield* this.#symlink(path);
      } else if (isWord(type, 'directory')) {
        this.#visitor.directory?.(path);
        directories.push({ path, previous: undefined });
        complete = false;
      } else {
        throw new NarError(this.#tokenAt, `unknown file type ${quote(type)}`);
      }

      // Move to the next node to parse, closing every directory that ends on the way.
      for (;;) {
        if (complete) {
          if (path.length === 0) return;
          this.#expect(yield KEYWORD, ')'); // closes the entry holding the node
        }
        const directory = directories.at(-1);
        if (directory === undefined) throw new Error('unreachable: entry outside any directory');
        const field = yield KEYWORD;
        if (isWord(field, ')')) {
          this.#visitor.endDirectory?.(directory.path);
          directories.pop();
          path = directory.path;
          complete = true;
          continue;
        }
        if (!isWord(field, 'entry')) throw new NarError(this.#tokenAt, `expected "entry" or ")", found ${quote(field)}`);
        this.#expect(yield KEYWORD, '(');
        this.#expect(yield KEYWORD, 'name');
        const name = Buffer.from(yield NAME);
        this.#checkName(name, directory.previous);
        directory.previous = name;
        this.#expect(yield KEYWORD, 'node');
        path = [...directory.path, name];
        if (path.length > MAX_DEPTH) throw new NarError(this.#offset, `directories nested more than ${MAX_DEPTH} deep`);
        break;
      }
    }
  }

  *#regular(path: NarPath): Grammar {
    let field = yield KEYWORD;
    const executable = isWord(field, 'executable');
    if (executable) {
      this.#expect(yield KEYWORD, '');
      field = yield KEYWORD;
    }
    if (!isWord(field, 'contents')) {
      throw new NarError(this.#tokenAt, `expected ${executable ? '' : '"executable" or '}"contents", found ${quote(field)}`);
    }
    yield { path, executable }; // the pump reports the file and streams its contents
    this.#expect(yield KEYWORD, ')');
  }

  *#symlink(path: NarPath): Grammar {
    this.#expect(yield KEYWORD, 'target');
    const target = yield TARGET;
    if (target.length === 0) throw new NarError(this.#tokenAt, 'empty symlink target');
    if (target.includes(0)) throw new NarError(this.#tokenAt, `symlink target ${quote(target)} contains a NUL byte`);
    this.#visitor.symlink?.(path, Buffer.from(target));
    this.#expect(yield KEYWORD, ')');
  }

  #expect(token: Buffer, word: string): void {
    if (!isWord(token, word)) throw new NarError(this.#tokenAt, `expected ${quote(word)}, found ${quote(token)}`);
  }

  #checkName(name: Buffer, previous: Buffer | undefined): void {
    const at = this.#tokenAt;
    if (name.length === 0) throw new NarError(at, 'empty file name');
    if (isWord(name, '.') || isWord(name, '..')) throw new NarError(at, `invalid file name ${quote(name)}`);
    if (name.includes(0x2f)) throw new NarError(at, `file name ${quote(name)} contains "/"`);
    if (name.includes(0)) throw new NarError(at, `file name ${quote(name)} contains a NUL byte`);
    if (previous === undefined) return;
    const order = Buffer.compare(previous, name);
    if (order === 0) throw new NarError(at, `duplicate directory entry ${quote(name)}`);
    if (order > 0) throw new NarError(at, `directory entries not sorted: ${quote(name)} after ${quote(previous)}`);
  }
}

/** Reads the u64 length field at `bytes[start]`, which begins at offset `at`. */
function readLength(bytes: Buffer, start: number, at: number): number {
  const high = bytes.readUInt32LE(start + 4);
  // Past 2^53 a number is no longer exact; nothing real is that big.
  if (high > 0x1fffff) throw new NarError(at, 'absurdly large length field');
  return high * 0x1_0000_0000 + bytes.readUInt32LE(start);
}

function padding(length: number): number {
  return (8 - (length % 8)) % 8;
}

function padded(length: number): number {
  return length + padding(length);
}

/** Compares a token with an ASCII word without decoding it. */
function isWord(token: Buffer, word: string): boolean {
  if (token.length !== word.length) return false;
  for (let i = 0; i < word.length; i++) {
    if (token[i] !== word.charCodeAt(i)) return false;
  }
  return true;
}

/** Renders a token for an error message. */
function quote(token: string | Buffer): string {
  const text = typeof token === 'string' ? token : token.toString('utf8');
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}
