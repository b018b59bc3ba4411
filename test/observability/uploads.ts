// Uploads made byte by byte (NARs from larder's own encoder), so that a test
// knows every byte it sends and can corrupt one field at a time.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { zstdCompressSync } from 'node:zlib';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { encodeNix32, NIX32_ALPHABET } from '../../src/nix/nix32.ts';

export const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest();

export function randomHashPart(): string {
  return Array.from(randomBytes(32), (b) => NIX32_ALPHABET[b % 32]).join('');
}

export interface Upload {
  readonly hashPart: string;
  readonly storePath: string;
  readonly nar: Buffer;
  /** The NAR as uploaded (compressed or not). */
  readonly file: Buffer;
  /** `nar/<FileHash>.nar[.zst]`, relative to the cache. */
  readonly url: string;
  narinfo(overrides?: Record<string, string>): string;
}

/** A one-file store path holding `content`; zstd-compressed unless `compressed` is false. */
export async function makeUpload(name: string, content: Uint8Array | string, options: { compressed?: boolean; references?: string[] } = {}): Promise<Upload> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-obs-up-'));
  await writeFile(join(dir, 'f'), content);
  const nar = await buffer(encodeNar(join(dir, 'f')));
  await rm(dir, { recursive: true });
  const compressed = options.compressed ?? true;
  const file = compressed ? zstdCompressSync(nar) : nar;
  const fileHash = encodeNix32(sha256(file));
  const hashPart = randomHashPart();
  const storePath = `/nix/store/${hashPart}-${name}`;
  const url = `nar/${fileHash}.nar${compressed ? '.zst' : ''}`;
  const fields: Record<string, string> = {
    StorePath: storePath,
    URL: url,
    Compression: compressed ? 'zstd' : 'none',
    FileHash: `sha256:${fileHash}`,
    FileSize: String(file.length),
    NarHash: `sha256:${encodeNix32(sha256(nar))}`,
    NarSize: String(nar.length),
    References: (options.references ?? []).join(' '),
  };
  return {
    hashPart,
    storePath,
    nar,
    file,
    url,
    narinfo: (overrides = {}) =>
      Object.entries({ ...fields, ...overrides })
        .map(([k, v]) => `${k}: ${v}\n`)
        .join(''),
  };
}
