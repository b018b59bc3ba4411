// Real uploads for the dashboard's tests and screenshots: each sample path is a
// file NAR made by larder's encoder, zstd-compressed and PUT to a running
// server exactly as `nix copy` does (NAR, then narinfo), dependencies first, so
// the server verifies, signs and indexes them as it would any push. Hash parts
// are random, so repeated runs never collide.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { zstdCompressSync } from 'node:zlib';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { encodeNix32, NIX32_ALPHABET } from '../../src/nix/nix32.ts';

export interface SamplePath {
  /** The store path name, e.g. `hello-2.12.1`; also how other samples refer to it. */
  readonly name: string;
  /** Names of samples (pushed earlier or in the same call, before this one) it refers to. */
  readonly refs?: readonly string[];
  /** Bytes of content (random text); default 2000. */
  readonly size?: number;
}

export interface PushedPath {
  readonly name: string;
  readonly hashPart: string;
  readonly base: string;
  readonly storePath: string;
  /** The NAR's URL relative to the cache: `nar/<fileHash>.nar.zst`. */
  readonly narUrl: string;
  readonly fileHash: string;
  readonly narSize: number;
  readonly fileSize: number;
}

function randomHashPart(): string {
  const bytes = randomBytes(32);
  return Array.from(bytes, (b) => NIX32_ALPHABET[b % 32]).join('');
}

async function put(url: string, token: string, body: string | Uint8Array): Promise<void> {
  const res = await fetch(url, { method: 'PUT', body, headers: { Authorization: `Bearer ${token}` } });
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT ${url}: ${res.status} ${await res.text()}`);
}

/**
 * Pushes the samples in order to `cacheUrl` with a write token; `known` maps names pushed
 * before to what they became, and the new ones are added to it.
 */
export async function pushSamples(
  cacheUrl: string,
  token: string,
  samples: readonly SamplePath[],
  known: Map<string, PushedPath> = new Map(),
  storeDir = '/nix/store',
): Promise<Map<string, PushedPath>> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-samples-'));
  try {
    for (const sample of samples) {
      const file = join(dir, 'content');
      // Random text: it compresses about as well as a store path's files do (to three quarters or so).
      const text = randomBytes(Math.ceil(((sample.size ?? 2000) * 3) / 4)).toString('base64');
      await writeFile(file, `${sample.name}\n${text.replace(/.{76}/g, '$&\n')}\n`);
      const nar = await buffer(encodeNar(file));
      const compressed = zstdCompressSync(nar);
      const fileHash = encodeNix32(createHash('sha256').update(compressed).digest());
      const hashPart = randomHashPart();
      const base = `${hashPart}-${sample.name}`;
      const refs = (sample.refs ?? []).map((name) => {
        const ref = known.get(name);
        if (!ref) throw new Error(`sample ${sample.name} refers to ${name}, which was not pushed before it`);
        return ref.base;
      });
      const narUrl = `nar/${fileHash}.nar.zst`;
      await put(`${cacheUrl}/${narUrl}`, token, compressed);
      const narinfo = [
        `StorePath: ${storeDir}/${base}`,
        `URL: ${narUrl}`,
        'Compression: zstd',
        `FileHash: sha256:${fileHash}`,
        `FileSize: ${compressed.length}`,
        `NarHash: sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
        `NarSize: ${nar.length}`,
        `References: ${refs.sort().join(' ')}`,
        '',
      ].join('\n');
      await put(`${cacheUrl}/${hashPart}.narinfo`, token, narinfo);
      known.set(sample.name, { name: sample.name, hashPart, base, storePath: `${storeDir}/${base}`, narUrl, fileHash, narSize: nar.length, fileSize: compressed.length });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return known;
}

/** Substitutes a path as Nix does: its narinfo, then its NAR (read to the end). */
export async function download(cacheUrl: string, token: string | undefined, path: PushedPath): Promise<void> {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  for (const url of [`${cacheUrl}/${path.hashPart}.narinfo`, `${cacheUrl}/${path.narUrl}`]) {
    const res = await fetch(url, { headers });
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
    await res.arrayBuffer();
  }
}

/** Asks for a narinfo the cache does not have (a miss, as Nix makes for every path it checks). */
export async function askMissing(cacheUrl: string, token: string | undefined): Promise<void> {
  const res = await fetch(`${cacheUrl}/${randomHashPart()}.narinfo`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  await res.arrayBuffer();
  if (res.status !== 404) throw new Error(`a missing narinfo answered ${res.status}`);
}
