/**
 * Streaming NAR serialisation of a filesystem path, byte-identical to
 * `nix-store --dump`.
 */
import { constants, type Stats } from 'node:fs';
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
  readonly #out = new ChunkWriter();
  /** Bytes of small files read ahead and not yet written out. */
  #readAhead = 0;

  async *encode(path: Buffer): AsyncGenerator<Buffer> {
    this.#out.string('nix-archive-1');
    yield* this.#node(await this.#inspect(path));
    yield this.#out.take();
  }

  async *#node(node: Inspected): AsyncGenerator<Buffer> {
    const out = this.#out;
    out.string('(');
    out.string('type');
    switch (node.type) {
      case 'regular':
        out.string('regular');
        if (node.executable) {
          out.string('executable');
          out.string('');
        }
        out.string('contents');
        if (node.contents) {
          out.string(node.contents);
          this.#readAhead -= node.contents.length;
        } else {
          out.u64(node.size);
          yield* this.#stream(node.path, node.size);
        }
        break;
      case 'symlink':
        out.string('symlink');
        out.string('target');
        out.string(node.target);
        break;
      case 'directory':
        out.string('directory');
        yield* this.#directory(node.path);
    }
    out.string(')');
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
      out.string('entry');
      out.string('(');
      out.string('name');
      out.string(name);
      out.string('node');
      yield* this.#node(node);
      out.string(')');
    }
  }

  /** Copies a large file into the output a chunk at a time. */
  async *#stream(path: Buffer, size: number): AsyncGenerator<Buffer> {
    await using file = await openFile(path);
    for (let left = size; left > 0; ) {
      if (this.#out.full) yield this.#out.take();
      const read = await this.#out.readFrom(file, left);
      if (read === 0) throw shrank(path);
      left -= read;
    }
    this.#out.padding(size);
  }

  async #inspect(path: Buffer): Promise<Inspected> {
    const stats = await lstat(path);
    if (stats.isDirectory()) return { type: 'directory', path };
    if (stats.isSymbolicLink()) return { type: 'symlink', target: await readlink(path, { encoding: 'buffer' }) };
    if (!stats.isFile()) throw new Error(`cannot put ${path} in a NAR: it is a ${describeType(stats)}`);
    const { size } = stats;
    const file = { type: 'regular', path, executable: (stats.mode & constants.S_IXUSR) !== 0, size } as const;
    if (size > SMALL_FILE || this.#readAhead + size > READ_AHEAD_LIMIT) return file;
    this.#readAhead += size;
    return { ...file, contents: await readWhole(path, size) };
  }
}

const SLASH = Buffer.from('/');
const EMPTY = Buffer.alloc(0);

// O_NOFOLLOW: the path was lstat'ed as a file; never read through a symlink swapped in since.
function openFile(path: Buffer): Promise<FileHandle> {
  return open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
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

function shrank(path: Buffer): Error {
  return new Error(`${path} shrank while it was being put in a NAR`);
}

function describeType(stats: Stats): string {
  if (stats.isSocket()) return 'socket';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  return 'file of unknown type';
}

/** Accumulates NAR bytes into chunks of about CHUNK_SIZE. */
class ChunkWriter {
  #buffer = Buffer.allocUnsafe(CHUNK_SIZE);
  #length = 0;

  get full(): boolean {
    return this.#length >= CHUNK_SIZE;
  }

  /** Hands over the bytes written so far and starts a new chunk. */
  take(): Buffer {
    const chunk = this.#buffer.subarray(0, this.#length);
    this.#buffer = Buffer.allocUnsafe(CHUNK_SIZE);
    this.#length = 0;
    return chunk;
  }

  /** Writes `str(value)`: length, bytes, zero padding. */
  string(value: string | Buffer): void {
    const bytes = typeof value === 'string' ? Buffer.from(value) : value;
    this.u64(bytes.length);
    this.#reserve(bytes.length);
    this.#length += bytes.copy(this.#buffer, this.#length);
    this.padding(bytes.length);
  }

  u64(value: number): void {
    this.#reserve(8);
    this.#buffer.writeUInt32LE(value % 0x1_0000_0000, this.#length);
    this.#buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), this.#length + 4);
    this.#length += 8;
  }

  /** Pads a string of `length` bytes out to a multiple of 8. */
  padding(length: number): void {
    const pad = (8 - (length % 8)) % 8;
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

  // A small file or a few tokens may overflow CHUNK_SIZE; writers check `full` between nodes.
  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.length) return;
    const bigger = Buffer.allocUnsafe(this.#length + bytes + CHUNK_SIZE);
    this.#buffer.copy(bigger, 0, 0, this.#length);
    this.#buffer = bigger;
  }
}
