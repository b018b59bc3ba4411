/**
 * NAR serialisation of a filesystem path, byte-identical to `nix-store --dump`,
 * in two flavours over one format writer (`NarWriter`):
 * - `encodeNar`: asynchronous and streaming, for the event loop;
 * - `NarChunkEncoder`: synchronous, chunk by chunk on demand, for worker
 *   threads, where a blocking fs call is cheaper than a thread-pool round trip.
 */
import { closeSync, constants, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

// Header tokens are gathered into chunks about this big; file contents are read straight into them.
const CHUNK_SIZE = 256 * 1024;
// Each async fs call costs a thread-pool round trip, so a directory's next
// entries are inspected (and small files read whole) while earlier ones are
// encoded, within a bound on bytes read ahead.
const LOOKAHEAD = 16;
const SMALL_FILE = 64 * 1024;
const READ_AHEAD_LIMIT = 4 * 1024 * 1024;

/**
 * Yields the NAR of `path` in chunks of roughly 256 KiB with bounded memory
 * whatever the file sizes. Symlinks are archived, not followed. Each yielded
 * buffer is fresh: consumers may keep it.
 */
export async function* encodeNar(path: string): AsyncGenerator<Buffer> {
  // Paths stay as bytes: names that are not UTF-8 would not survive a string.
  yield* new NarEncoder().encode(Buffer.from(path));
}

/** The NAR of `path` as a byte stream. */
export function narStream(path: string): Readable {
  return Readable.from(encodeNar(path), { objectMode: false });
}

/** A filesystem node, lstat'ed and, when small, read. */
type Inspected =
  | { readonly type: 'regular'; readonly path: Buffer; readonly executable: boolean; readonly size: number; readonly contents?: Buffer }
  | { readonly type: 'symlink'; readonly target: Buffer }
  | { readonly type: 'directory'; readonly path: Buffer };

class NarEncoder {
  readonly #out = new NarWriter(CHUNK_SIZE);
  /** Bytes of small files read ahead and not yet written out. */
  #readAhead = 0;

  async *encode(path: Buffer): AsyncGenerator<Buffer> {
    this.#out.header();
    yield* this.#node(await this.#inspect(path));
    yield this.#out.take();
  }

  async *#node(node: Inspected): AsyncGenerator<Buffer> {
    const out = this.#out;
    switch (node.type) {
      case 'regular':
        out.regular(node.executable, node.size);
        if (node.contents) {
          out.bytes(node.contents);
          this.#readAhead -= node.contents.length;
        } else {
          yield* this.#stream(node.path, node.size);
        }
        out.padding(node.size);
        out.end();
        break;
      case 'symlink':
        out.symlink(node.target);
        break;
      case 'directory':
        out.directory();
        yield* this.#directory(node.path);
        out.end();
    }
  }

  async *#directory(path: Buffer): AsyncGenerator<Buffer> {
    const out = this.#out;
    const names = (await readdir(path, { encoding: 'buffer' })).sort(Buffer.compare);
    const ahead: Promise<Inspected>[] = [];
    const inspectAhead = (index: number): void => {
      const name = names[index];
      if (name === undefined) return;
      const inspecting = this.#inspect(Buffer.concat([path, SLASH, name]));
      inspecting.catch(() => {}); // awaited in turn below; until then a failure must not count as unhandled
      ahead[index] = inspecting;
    };
    for (let i = 0; i < LOOKAHEAD; i++) inspectAhead(i);
    for (const [index, name] of names.entries()) {
      const node = await ahead[index]!;
      delete ahead[index];
      inspectAhead(index + LOOKAHEAD);
      if (out.full) yield out.take();
      out.entry(name);
      yield* this.#node(node);
      out.end();
    }
  }

  /** Copies a large file into the output a chunk at a time (without its padding). */
  async *#stream(path: Buffer, size: number): AsyncGenerator<Buffer> {
    await using file = await openFile(path);
    for (let left = size; left > 0; ) {
      if (this.#out.full) yield this.#out.take();
      const read = await this.#out.readFrom(file, left);
      if (read === 0) throw shrank(path);
      left -= read;
    }
  }

  async #inspect(path: Buffer): Promise<Inspected> {
    const stats = await lstat(path);
    if (stats.isDirectory()) return { type: 'directory', path };
    if (stats.isSymbolicLink()) return { type: 'symlink', target: await readlink(path, { encoding: 'buffer' }) };
    if (!stats.isFile()) throw notArchivable(path, stats);
    const { size } = stats;
    const file = { type: 'regular', path, executable: isExecutable(stats), size } as const;
    if (size > SMALL_FILE || this.#readAhead + size > READ_AHEAD_LIMIT) return file;
    this.#readAhead += size;
    return { ...file, contents: await readWhole(path, size) };
  }
}

/** A directory being archived by `NarChunkEncoder`. */
interface OpenDirectory {
  readonly path: Buffer;
  readonly names: readonly Buffer[];
  next: number;
  /** Whether it is a directory entry (closed by one more `)`), not the root. */
  readonly entry: boolean;
}

/** A regular file whose contents are being copied by `NarChunkEncoder`. */
interface OpenFile {
  readonly path: Buffer;
  readonly fd: number;
  readonly size: number;
  left: number;
  readonly entry: boolean;
}

export interface NarChunkOptions {
  /** Chunk size in bytes (default 1 MiB). */
  readonly chunkSize?: number;
  /**
   * Where recycled chunks wait for reuse; share one array between encoders of
   * the same chunk size to reuse buffers from one path to the next.
   */
  readonly spare?: Buffer[];
}

/**
 * The NAR of `path`, produced synchronously one chunk at a time by `next()`:
 * blocking fs calls, no promise or generator per file, contents read straight
 * into the output chunk, an explicit stack instead of recursion. Memory is
 * flat (about one chunk) whatever the file sizes, and the caller decides when
 * to ask for more. Meant for worker threads.
 */
export class NarChunkEncoder {
  readonly #out: NarWriter;
  readonly #root: Buffer;
  readonly #directories: OpenDirectory[] = [];
  #file: OpenFile | undefined;
  #started = false;
  #done = false;

  constructor(path: string | Buffer, options: NarChunkOptions = {}) {
    this.#root = typeof path === 'string' ? Buffer.from(path) : path;
    this.#out = new NarWriter(options.chunkSize ?? 1024 * 1024, options.spare);
  }

  /**
   * The next chunk (about `chunkSize` bytes; the last one may be shorter), or
   * undefined after the last. Each chunk is the caller's until handed to
   * `recycle`. Throws, naming the path, when a node cannot be archived; the
   * encoder is then finished.
   */
  next(): Buffer | undefined {
    if (this.#done) return undefined;
    try {
      this.#fill();
    } catch (error) {
      this.close();
      throw error;
    }
    const chunk = this.#out.take();
    return chunk.length > 0 ? chunk : undefined;
  }

  /** Gives a chunk back for reuse once the caller is done with it. */
  recycle(chunk: Buffer): void {
    this.#out.recycle(chunk);
  }

  /** Releases the open file, if any; `next()` then returns undefined. Needed only when stopping early. */
  close(): void {
    this.#done = true;
    const file = this.#file;
    this.#file = undefined;
    if (file) closeSync(file.fd);
    this.#directories.length = 0;
  }

  #fill(): void {
    const out = this.#out;
    if (!this.#started) {
      this.#started = true;
      out.header();
      this.#visit(this.#root, false);
    }
    while (!out.full) {
      const file = this.#file;
      if (file) {
        if (file.left > 0) {
          const read = out.readSync(file.fd, file.left);
          if (read === 0) throw shrank(file.path);
          file.left -= read;
          continue;
        }
        this.#file = undefined;
        closeSync(file.fd);
        out.padding(file.size);
        out.end();
        if (file.entry) out.end();
        continue;
      }
      const directory = this.#directories.at(-1);
      if (!directory) {
        this.#done = true;
        return;
      }
      const name = directory.names[directory.next++];
      if (name === undefined) {
        this.#directories.pop();
        out.end();
        if (directory.entry) out.end();
        continue;
      }
      out.entry(name);
      this.#visit(Buffer.concat([directory.path, SLASH, name]), true);
    }
  }

  /** Writes a node's header, and the whole node unless it has contents or entries to come. */
  #visit(path: Buffer, entry: boolean): void {
    const out = this.#out;
    const stats = lstatSync(path);
    if (stats.isDirectory()) {
      out.directory();
      this.#directories.push({ path, names: readdirSync(path, { encoding: 'buffer' }).sort(Buffer.compare), next: 0, entry });
    } else if (stats.isSymbolicLink()) {
      out.symlink(readlinkSync(path, { encoding: 'buffer' }));
      if (entry) out.end();
    } else if (stats.isFile()) {
      const { size } = stats;
      out.regular(isExecutable(stats), size);
      if (size === 0) {
        out.end();
        if (entry) out.end();
        return;
      }
      this.#file = { path, fd: openSync(path, OPEN_FLAGS), size, left: size, entry };
    } else {
      throw notArchivable(path, stats);
    }
  }
}

const SLASH = Buffer.from('/');
// O_NOFOLLOW: the path was lstat'ed as a file; never read through a symlink swapped in since.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;

function openFile(path: Buffer): Promise<FileHandle> {
  return open(path, OPEN_FLAGS);
}

async function readWhole(path: Buffer, size: number): Promise<Buffer> {
  if (size === 0) return EMPTY;
  await using file = await openFile(path);
  const contents = Buffer.allocUnsafe(size);
  for (let got = 0; got < size; ) {
    const { bytesRead } = await file.read(contents, got, size - got, got);
    if (bytesRead === 0) throw shrank(path);
    got += bytesRead;
  }
  return contents;
}

const EMPTY = Buffer.alloc(0);

/** Only the owner's execute bit survives in a NAR, as in Nix. */
function isExecutable(stats: Stats): boolean {
  return (stats.mode & constants.S_IXUSR) !== 0;
}

function shrank(path: Buffer): Error {
  return new Error(`${path} shrank while it was being put in a NAR`);
}

function notArchivable(path: Buffer, stats: Stats): Error {
  return new Error(`cannot put ${path} in a NAR: it is a ${describeType(stats)}`);
}

function describeType(stats: Stats): string {
  if (stats.isSocket()) return 'socket';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  return 'file of unknown type';
}

/** `str(s)` of each string, concatenated: length as u64 LE, bytes, zero padding to 8. */
function tokens(...strings: string[]): Buffer {
  return Buffer.concat(
    strings.map((s) => {
      const bytes = Buffer.from(s);
      const token = Buffer.alloc(8 + bytes.length + padLength(bytes.length));
      token.writeUInt32LE(bytes.length, 0);
      bytes.copy(token, 8);
      return token;
    }),
  );
}

function padLength(length: number): number {
  return (8 - (length % 8)) % 8;
}

// The NAR grammar's fixed token sequences, encoded once.
const HEADER = tokens('nix-archive-1');
const REGULAR = tokens('(', 'type', 'regular', 'contents');
const EXECUTABLE = tokens('(', 'type', 'regular', 'executable', '', 'contents');
const SYMLINK = tokens('(', 'type', 'symlink', 'target');
const DIRECTORY = tokens('(', 'type', 'directory');
const ENTRY = tokens('entry', '(', 'name');
const NODE = tokens('node');
const END = tokens(')');

// Recycled chunks kept for reuse: at most this many bytes of them, and at least one.
const MAX_SPARE_BYTES = 8 * 1024 * 1024;

/**
 * Writes the NAR format into chunks of about `chunkSize` bytes: the one place
 * that knows its bytes, shared by both encoders. A node is written as its
 * header (`regular`, `symlink`, `directory`), then contents or entries, then
 * `end()`; a directory entry is `entry(name)`, the node, then `end()`.
 */
class NarWriter {
  readonly #chunkSize: number;
  readonly #spare: Buffer[];
  #buffer: Buffer;
  #length = 0;

  constructor(chunkSize: number, spare: Buffer[] = []) {
    this.#chunkSize = chunkSize;
    this.#spare = spare;
    this.#buffer = this.#fresh();
  }

  get full(): boolean {
    return this.#length >= this.#chunkSize;
  }

  /** Hands over the bytes written so far and starts a new chunk. */
  take(): Buffer {
    const chunk = this.#buffer.subarray(0, this.#length);
    this.#buffer = this.#fresh();
    this.#length = 0;
    return chunk;
  }

  /** Takes back a chunk from `take()` that its consumer no longer needs. */
  recycle(chunk: Buffer): void {
    // Only whole buffers of the chunk size, never a slice of Node's shared pool.
    if (this.#spare.length < Math.max(1, MAX_SPARE_BYTES / this.#chunkSize) && chunk.byteOffset === 0 && chunk.buffer.byteLength === this.#chunkSize && this.#chunkSize >= 8192) {
      this.#spare.push(Buffer.from(chunk.buffer, 0, this.#chunkSize));
    }
  }

  #fresh(): Buffer {
    const spare = this.#spare.pop();
    return spare?.length === this.#chunkSize ? spare : Buffer.allocUnsafe(this.#chunkSize);
  }

  header(): void {
    this.#raw(HEADER);
  }

  /** A regular file's header up to its size; its contents and `padding(size)` follow. */
  regular(executable: boolean, size: number): void {
    this.#raw(executable ? EXECUTABLE : REGULAR);
    this.#u64(size);
  }

  /** A whole symlink node. */
  symlink(target: Buffer): void {
    this.#raw(SYMLINK);
    this.#string(target);
    this.end();
  }

  directory(): void {
    this.#raw(DIRECTORY);
  }

  /** A directory entry's header, up to its node. */
  entry(name: Buffer): void {
    this.#raw(ENTRY);
    this.#string(name);
    this.#raw(NODE);
  }

  end(): void {
    this.#raw(END);
  }

  /** Raw bytes, e.g. a file's contents. */
  bytes(value: Buffer): void {
    this.#raw(value);
  }

  /** Pads contents of `length` bytes out to a multiple of 8. */
  padding(length: number): void {
    const pad = padLength(length);
    this.#reserve(pad);
    this.#buffer.fill(0, this.#length, this.#length + pad);
    this.#length += pad;
  }

  /** Reads up to `max` bytes of `file` into the chunk; returns how many arrived. */
  async readFrom(file: FileHandle, max: number): Promise<number> {
    const room = Math.min(max, this.#buffer.length - this.#length);
    const { bytesRead } = await file.read(this.#buffer, this.#length, room, null);
    this.#length += bytesRead;
    return bytesRead;
  }

  /** Reads up to `max` bytes of `fd` into the chunk, blocking; returns how many arrived. */
  readSync(fd: number, max: number): number {
    const room = Math.min(max, this.#buffer.length - this.#length);
    const bytesRead = readSync(fd, this.#buffer, this.#length, room, null);
    this.#length += bytesRead;
    return bytesRead;
  }

  /** `str(value)`: length, bytes, zero padding. */
  #string(value: Buffer): void {
    this.#u64(value.length);
    this.#raw(value);
    this.padding(value.length);
  }

  #u64(value: number): void {
    this.#reserve(8);
    this.#buffer.writeUInt32LE(value % 0x1_0000_0000, this.#length);
    this.#buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), this.#length + 4);
    this.#length += 8;
  }

  #raw(bytes: Buffer): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  // A small file or a few tokens may overflow the chunk size; writers check `full` between nodes.
  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.length) return;
    const bigger = Buffer.allocUnsafe(this.#length + bytes + this.#chunkSize);
    this.#buffer.copy(bigger, 0, 0, this.#length);
    this.#buffer = bigger;
  }
}
