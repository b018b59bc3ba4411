// Store paths made up for the server benchmarks, without nix: each is one
// regular file of incompressible bytes (an AES-CTR keystream, generated at
// GiB/s), its NAR zstd-compressed ahead of time, uploaded with the stock
// PUTs that `nix copy` makes, so larder verifies and signs it as any upload.
// The compressed NAR is kept in memory when small, else in a file.

import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { constants, createZstdCompress } from 'node:zlib';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { parseHash } from '../../src/nix/hash.ts';
import { formatNarInfo } from '../../src/nix/narinfo.ts';
import type { StorePath } from '../../src/nix/store-path.ts';

const MiB = 1024 * 1024;

/** A Nix string in a NAR: length (u64 LE), bytes, zero padding to 8. */
function narString(text: string): Buffer {
  const bytes = Buffer.from(text);
  const out = Buffer.alloc(8 + Math.ceil(bytes.length / 8) * 8);
  out.writeBigUInt64LE(BigInt(bytes.length));
  bytes.copy(out, 8);
  return out;
}

/** The NAR of a single regular file of `size` bytes from `contents`. */
export async function* regularFileNar(size: number, contents: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(size));
  yield Buffer.concat(['nix-archive-1', '(', 'type', 'regular', 'contents'].map(narString).concat(length));
  let seen = 0;
  for await (const chunk of contents) {
    seen += chunk.length;
    yield chunk;
  }
  if (seen !== size) throw new Error(`NAR contents: ${seen} bytes, expected ${size}`);
  yield Buffer.concat([Buffer.alloc((8 - (size % 8)) % 8), narString(')')]);
}

/** `size` incompressible bytes from a seed, in chunks of up to 1 MiB. */
export function* keystream(size: number, seed: Buffer): Generator<Buffer> {
  const cipher = createCipheriv('aes-128-ctr', seed.subarray(0, 16), Buffer.alloc(16));
  const zeros = Buffer.alloc(MiB);
  for (let left = size; left > 0; left -= MiB) yield cipher.update(left >= MiB ? zeros : zeros.subarray(0, left));
}

export interface PreparedNar {
  readonly storePath: StorePath;
  /** `sha256:<nix32>` */
  readonly narHash: string;
  readonly narSize: number;
  /** nix32 sha256 of the compressed file. */
  readonly fileHash: string;
  readonly fileSize: number;
  /** `nar/<fileHash>.nar.zst` */
  readonly url: string;
  /** The compressed NAR: in memory, or the file holding it. */
  readonly body: Buffer | { file: string };
}

/** A store path `/nix/store/<random hash>-<name>`: nothing checks that the hash matches the contents. */
export function syntheticStorePath(name: string): StorePath {
  return { hashPart: encodeNix32(randomBytes(20)), name };
}

/** Builds the path's NAR (one file of `size` random bytes), compresses it with zstd level 1, hashes both. */
export async function prepareNar(name: string, size: number, file?: string): Promise<PreparedNar> {
  const storePath = syntheticStorePath(name);
  const narHash = createHash('sha256');
  let narSize = 0;
  const fileHash = createHash('sha256');
  let fileSize = 0;
  const kept: Buffer[] = [];
  const nar = Readable.from(regularFileNar(size, keystream(size, randomBytes(16))));
  nar.on('data', (chunk: Buffer) => {
    narHash.update(chunk);
    narSize += chunk.length;
  });
  const compressor = createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: 1 } });
  compressor.on('data', (chunk: Buffer) => {
    fileHash.update(chunk);
    fileSize += chunk.length;
  });
  const sink = file
    ? createWriteStream(file)
    : new Writable({
        write(chunk: Buffer, _encoding, callback) {
          kept.push(chunk);
          callback();
        },
      });
  await pipeline(nar, compressor, sink);
  const fileHashNix32 = encodeNix32(fileHash.digest());
  return {
    storePath,
    narHash: `sha256:${encodeNix32(narHash.digest())}`,
    narSize,
    fileHash: fileHashNix32,
    fileSize,
    url: `nar/${fileHashNix32}.nar.zst`,
    body: file ? { file } : Buffer.concat(kept),
  };
}

/** The narinfo `nix copy` would PUT (unsigned: larder signs what it accepts). */
export function narInfoOf(nar: PreparedNar, references: readonly StorePath[] = []): string {
  return formatNarInfo({
    storePath: nar.storePath,
    url: nar.url,
    compression: 'zstd',
    fileHash: parseHash(`sha256:${nar.fileHash}`),
    fileSize: nar.fileSize,
    narHash: parseHash(nar.narHash),
    narSize: nar.narSize,
    references,
    sigs: [],
  });
}

/** PUT with a Bearer token; resolves with the status, rejects on a network error. */
export function put(url: string, token: string, body: Buffer | string | { file: string }, contentType: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { Authorization: `Bearer ${token}`, 'Content-Type': contentType } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (t: string) => (text += t));
      res.on('end', () => (res.statusCode! < 300 ? resolve(res.statusCode!) : reject(new Error(`PUT ${url}: ${res.statusCode} ${text.trim()}`))));
    });
    req.on('error', reject);
    if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else createReadStream(body.file).pipe(req);
  });
}

/** Uploads a prepared path to a larder cache as `nix copy` would: the NAR, then its narinfo. */
export async function uploadPath(cacheUrl: string, token: string, nar: PreparedNar, references: readonly StorePath[] = []): Promise<void> {
  await put(`${cacheUrl}/${nar.url}`, token, nar.body, 'application/x-nix-nar');
  await put(`${cacheUrl}/${nar.storePath.hashPart}.narinfo`, token, narInfoOf(nar, references), 'text/x-nix-narinfo');
}
