// What the reliability tests upload: real NARs from larder's encoder (files
// written to a temporary directory and archived), compressed, hashed, and
// described by an unsigned narinfo as `nix copy` sends it (the server signs),
// in closures whose paths refer to earlier ones. Plus the HTTP moves every
// test makes: upload a pair, read it back and check every byte.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { zstdCompressSync } from 'node:zlib';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { encodeNix32, NIX32_ALPHABET } from '../../src/nix/nix32.ts';

export const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest();

export function randomHashPart(): string {
  return Array.from(randomBytes(32), (b) => NIX32_ALPHABET[b % 32]).join('');
}

export interface PathUpload {
  readonly hashPart: string;
  readonly base: string;
  readonly storePath: string;
  /** The uncompressed NAR. */
  readonly nar: Buffer;
  /** The file as uploaded (zstd, or the NAR itself for compression none). */
  readonly file: Buffer;
  readonly fileHash: string;
  /** `nar/<fileHash>.nar[.zst]`. */
  readonly url: string;
  readonly narHash: string;
  /** Store path basenames. */
  readonly references: readonly string[];
  /** The narinfo a client sends, with any field replaced (or removed with ''). */
  narinfo(overrides?: Record<string, string | undefined>): string;
}

export interface MakeOptions {
  readonly compression?: 'zstd' | 'none';
  /** Bytes of (incompressible) content per path. */
  readonly size?: number;
}

/** One path whose NAR archives a file of `content`. */
export async function makePath(name: string, content: Buffer | string, references: readonly string[] = [], options: MakeOptions = {}): Promise<PathUpload> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-rel-'));
  try {
    await writeFile(join(dir, 'f'), content);
    const nar = await buffer(encodeNar(join(dir, 'f')));
    const compression = options.compression ?? 'zstd';
    const file = compression === 'zstd' ? zstdCompressSync(nar) : nar;
    const fileHash = encodeNix32(sha256(file));
    const hashPart = randomHashPart();
    const base = `${hashPart}-${name}`;
    const url = `nar/${fileHash}.nar${compression === 'zstd' ? '.zst' : ''}`;
    const narHash = `sha256:${encodeNix32(sha256(nar))}`;
    const fields: Record<string, string> = {
      StorePath: `/nix/store/${base}`,
      URL: url,
      Compression: compression,
      FileHash: `sha256:${fileHash}`,
      FileSize: String(file.length),
      NarHash: narHash,
      NarSize: String(nar.length),
      References: [...references].sort().join(' '),
    };
    return {
      hashPart,
      base,
      storePath: `/nix/store/${base}`,
      nar,
      file,
      fileHash,
      url,
      narHash,
      references,
      narinfo: (overrides = {}) =>
        Object.entries({ ...fields, ...overrides })
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${k}: ${v}\n`)
          .join(''),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `count` paths, each referring to the one before it and every third one also
 * to the one before that (so uploading them in order always finds the
 * references present), with `size` random bytes each.
 */
export async function makeClosure(prefix: string, count: number, options: MakeOptions = {}): Promise<PathUpload[]> {
  const paths: PathUpload[] = [];
  for (let i = 0; i < count; i++) {
    const refs = [paths[i - 1], i % 3 === 0 ? paths[i - 2] : undefined].flatMap((p) => (p ? [p.base] : []));
    const content = Buffer.concat([Buffer.from(`${prefix} ${i}\n`), randomBytes(options.size ?? 2000)]);
    paths.push(await makePath(`${prefix}-${i}`, content, refs, options));
  }
  return paths;
}

/** An agent with sockets enough for the tests' bursts, so that none waits on another. */
export const burstAgent = new Agent({ keepAlive: true, maxSockets: 2048 });

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array | string;
  readonly agent?: Agent;
  /** Give up (and reject) after this long without an answer (default a minute: a hang fails the test, naming the request). */
  readonly timeoutMs?: number;
}

/** One HTTP request with node:http (the raw path is sent as is: no URL normalisation). */
export function httpRequest(baseUrl: string, path: string, options: RequestOptions = {}): Promise<Answer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, method: options.method ?? 'GET', path, headers: options.headers, agent: options.agent ?? burstAgent },
      (res) => {
        buffer(res).then((body) => resolve({ status: res.statusCode!, headers: res.headers, body }), reject);
      },
    );
    req.on('error', reject);
    const timeoutMs = options.timeoutMs ?? 60_000;
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${options.method ?? 'GET'} ${path.slice(0, 200)} in ${timeoutMs} ms`)));
    req.end(options.body);
  });
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** PUTs the NAR, then the narinfo; the two statuses (the narinfo's 0 when the NAR was refused). */
export async function uploadPath(cacheUrl: string, token: string, up: PathUpload, agent?: Agent): Promise<{ nar: number; narinfo: number }> {
  const { origin, pathname } = new URL(cacheUrl);
  const nar = await httpRequest(origin, `${pathname}/${up.url}`, { method: 'PUT', body: up.file, headers: bearer(token), ...(agent && { agent }) });
  if (nar.status >= 300) return { nar: nar.status, narinfo: 0 };
  const info = await httpRequest(origin, `${pathname}/${up.hashPart}.narinfo`, { method: 'PUT', body: up.narinfo(), headers: bearer(token), ...(agent && { agent }) });
  return { nar: nar.status, narinfo: info.status };
}

/** Reads the path back as a substituter would and checks every byte and hash against what was uploaded. */
export async function assertSubstitutable(cacheUrl: string, token: string, up: PathUpload): Promise<void> {
  const { origin, pathname } = new URL(cacheUrl);
  const info = await httpRequest(origin, `${pathname}/${up.hashPart}.narinfo`, { headers: bearer(token) });
  assert.equal(info.status, 200, `${up.base}.narinfo: ${info.body}`);
  const text = info.body.toString('utf8');
  assert.match(text, new RegExp(`^StorePath: ${up.storePath}$`, 'm'));
  assert.match(text, new RegExp(`^NarHash: ${up.narHash}$`, 'm'));
  assert.match(text, /^Sig: \S+:\S+$/m, 'signed by the server');
  const url = /^URL: (\S+)$/m.exec(text)![1]!;
  const nar = await httpRequest(origin, `${pathname}/${url}`, { headers: bearer(token) });
  assert.equal(nar.status, 200, `${url}: ${nar.body}`);
  assert.ok(nar.body.equals(up.file), `${url}: the bytes served are the bytes uploaded`);
  assert.equal(`sha256:${encodeNix32(sha256(nar.body))}`, /^FileHash: (\S+)$/m.exec(text)![1]);
}
