// Uploads, verified on the way in (architecture invariants 2–4): a NAR is
// hashed, decompressed, parsed and counted in one streaming pass and published
// only when it checks out; a narinfo becomes visible only when it agrees with
// its stored NAR and every reference is already in the cache (or, failing
// that, in one of the cache's upstreams), and it is signed here with the
// cache's active keys.

import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DecompressionError } from '../compression/decompress.ts';
import { IndexPreconditionError, IndexUnavailableError, type CacheIndex, type NarRecord } from '../index/cache-index.ts';
import { compressionOfExtension, type Compression } from '../nix/compression.ts';
import { signNarInfo } from '../nix/fingerprint.ts';
import { formatHash, hashEquals, parseHash, type Hash } from '../nix/hash.ts';
import { NarError } from '../nix/nar-parser.ts';
import { formatNarInfo, NarInfoError, parseNarInfo, type NarInfo } from '../nix/narinfo.ts';
import { isNix32 } from '../nix/nix32.ts';
import { parseSecretKey } from '../nix/signing-key.ts';
import { storePathBase, type StorePath } from '../nix/store-path.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { narInfoKey, narKey, narUrl } from '../storage/layout.ts';
import { noteShortLivedBytes } from './garbage-pacer.ts';
import { sharedNarCheckPool } from './nar-check.ts';
import { Rejection } from './rejection.ts';
import type { Telemetry, UploadRejectionReason } from './telemetry.ts';

export interface PublishContext {
  readonly index: CacheIndex;
  readonly store: BlobStore;
  readonly storeDir: string;
  /** Largest compressed NAR accepted, in bytes. */
  readonly maxNarSize: number;
  /** Where references missing from a cache may be found instead; none when absent. */
  readonly upstreams?: UpstreamLookup;
  /** Where refused uploads are counted; silent when absent. */
  readonly telemetry?: Telemetry;
}

/** A refused upload, counted under its reason. */
function refused(ctx: PublishContext, cache: string, reason: UploadRejectionReason, rejection: Rejection): Rejection {
  ctx.telemetry?.uploadRejected(cache, reason);
  return rejection;
}

/** parseNarFileName for an upload, its refusal counted. */
function parseUploadedNarName(ctx: PublishContext, cache: string, fileName: string): ReturnType<typeof parseNarFileName> {
  try {
    return parseNarFileName(fileName);
  } catch (error) {
    if (error instanceof Rejection) throw refused(ctx, cache, error.kind === 'unsupported' ? 'compression' : 'malformed', error);
    throw error;
  }
}

/** The cache's upstreams, as services/upstreams.ts asks them over HTTP. */
export interface UpstreamLookup {
  findPresent(cache: string, hashParts: readonly string[]): Promise<UpstreamFindings>;
}

export interface UpstreamFindings {
  /** The URLs of the cache's upstreams, for messages. */
  readonly upstreams: readonly string[];
  /** The hash parts one of them holds, signed by a key trusted for it. */
  readonly present: ReadonlySet<string>;
}

const NAR_FILE = /^([0-9a-z]{52})\.nar(\.[a-z0-9]+)?$/;

/** Parses `<nix32 filehash>.nar[.ext]`, the last part of a NAR URL. */
export function parseNarFileName(fileName: string): { fileHash: string; compression: Compression } {
  const match = NAR_FILE.exec(fileName);
  if (!match || !isNix32(match[1]!)) {
    throw new Rejection('invalid', `NAR file name '${fileName}': expected nar/<52 nix32 characters>.nar[.xz|.zst|.bz2|.br]`);
  }
  const compression = compressionOfExtension(match[2] ?? '');
  if (!compression) throw new Rejection('unsupported', `NAR file name '${fileName}': unsupported compression '${match[2]}'`);
  return { fileHash: match[1]!, compression };
}

export interface ReceivedNar {
  readonly nar: NarRecord;
  /** False when the cache already had this NAR (the body was not stored again). */
  readonly created: boolean;
}

/** What the mirror knows of a NAR before fetching it: the upstream's signed narinfo. */
export interface ExpectedNar {
  /** The upstream cache it comes from, recorded with the NAR. */
  readonly upstream: string;
  readonly narHash: Hash;
  readonly narSize: number;
}

/**
 * Stores a NAR body once it is verified. With `expected` (the mirror), a body that does not match
 * the upstream's narinfo is refused as a mismatch before it becomes visible.
 */
export async function receiveNar(
  ctx: PublishContext,
  cache: string,
  fileName: string,
  body: Readable,
  expected?: ExpectedNar,
): Promise<ReceivedNar> {
  const { fileHash, compression } = parseUploadedNarName(ctx, cache, fileName);
  // Renewed, so that garbage collection takes it for an upload in flight until its narinfo comes.
  const existing = await ctx.index.touchNar(cache, fileHash, Date.now());
  if (existing) {
    body.resume();
    await finished(body).catch(() => {});
    return { nar: existing, created: false };
  }

  const url = narUrl(fileHash, compression);
  const writer = await ctx.store.createWriter(narKey(cache, url));
  // FileHash, decompression, NarHash, NarSize and grammar are checked in a worker thread.
  const check = sharedNarCheckPool().start(compression);
  let fileSize = 0;
  try {
    // Left open on failure, so that the server can still answer with the reason.
    for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      fileSize += chunk.length;
      if (fileSize > ctx.maxNarSize) {
        throw refused(ctx, cache, 'too-large', new Rejection('too-large', `NAR is larger than this server's limit of ${ctx.maxNarSize} bytes`));
      }
      if (!writer.stream.write(chunk)) await once(writer.stream, 'drain');
      await check.push(chunk);
      // Each socket read is a fresh buffer, dead once written and checked.
      noteShortLivedBytes(chunk.length);
    }
    const { fileHash: actual, narHash, narSize } = await check.finish();
    if (actual !== fileHash) {
      throw refused(ctx, cache, 'hash', new Rejection('mismatch', `FileHash: the URL names sha256:${fileHash} but the body hashes to sha256:${actual}`));
    }
    if (expected) checkExpected(expected, narHash, narSize);
    // Garbage collection may be deleting an older copy of this very file: wait until it is done.
    await waitWhileDeleting(ctx.index, cache, fileHash);
    // Only now, verified, does the NAR become visible (for S3: the multipart upload completes).
    await writer.commit();
    const nar: NarRecord = {
      cache,
      fileHash,
      url,
      compression,
      fileSize,
      narHash: formatHash({ algorithm: 'sha256', digest: narHash }),
      narSize,
      createdAt: Date.now(),
      ...(expected ? { upstream: expected.upstream } : {}),
    };
    await ctx.index.putNar(nar);
    return { nar, created: true };
  } catch (error) {
    check.abandon();
    await writer.abort();
    if (error instanceof NarError) throw refused(ctx, cache, 'grammar', new Rejection('invalid', `NAR is malformed: ${error.message}`));
    if (error instanceof DecompressionError) {
      throw refused(ctx, cache, 'compression', new Rejection('invalid', `NAR body is not valid ${compression} data: ${(error as Error).message}`));
    }
    throw error;
  }
}

function checkExpected(expected: ExpectedNar, narHash: Buffer, narSize: number): void {
  const actual: Hash = { algorithm: 'sha256', digest: narHash };
  if (!hashEquals(expected.narHash, actual)) {
    throw new Rejection('mismatch', `NarHash: ${expected.upstream} says ${formatHash(expected.narHash)} but the NAR hashes to ${formatHash(actual)}`);
  }
  if (expected.narSize !== narSize) {
    throw new Rejection('mismatch', `NarSize: ${expected.upstream} says ${expected.narSize} but the NAR has ${narSize} bytes`);
  }
}

const DELETION_WAIT_MS = 10_000;
const DELETION_POLL_MS = 100;

/** Resolves once no garbage collection claims the NAR; IndexUnavailableError (a 503) after a while. */
async function waitWhileDeleting(index: CacheIndex, cache: string, fileHash: string): Promise<void> {
  const deadline = Date.now() + DELETION_WAIT_MS;
  while (await index.narDeleting(cache, fileHash)) {
    if (Date.now() > deadline) {
      throw new IndexUnavailableError(`NAR ${fileHash} of cache ${cache} is being deleted by garbage collection; upload it again shortly`);
    }
    await sleep(DELETION_POLL_MS);
  }
}

export interface PublishedPath {
  readonly narinfo: string;
  /** False when the same path was already there: an upload that changes nothing. */
  readonly created: boolean;
}

const NAR_URL = /^nar\/([^/]+)$/;

export async function receiveNarInfo(ctx: PublishContext, cache: string, hashPart: string, text: string): Promise<PublishedPath> {
  let info: NarInfo;
  try {
    info = parseNarInfo(text, ctx.storeDir);
  } catch (error) {
    if (error instanceof NarInfoError) throw refused(ctx, cache, 'malformed', new Rejection('invalid', `narinfo ${error.message}`));
    throw error;
  }
  const base = storePathBase(info.storePath);
  if (info.storePath.hashPart !== hashPart) {
    throw refused(ctx, cache, 'malformed', new Rejection('invalid', `field StorePath: ${base} does not match the URL's ${hashPart}.narinfo`));
  }
  const urlMatch = NAR_URL.exec(info.url);
  if (!urlMatch) throw refused(ctx, cache, 'malformed', new Rejection('invalid', `field URL: expected nar/<FileHash>.nar[.ext], got '${info.url}'`));
  const { fileHash } = parseUploadedNarName(ctx, cache, urlMatch[1]!);
  const nar = await ctx.index.getNar(cache, fileHash);
  if (!nar) {
    throw refused(ctx, cache, 'nar-missing', new Rejection('conflict', `field URL: ${info.url} has not been uploaded to cache ${cache}; upload the NAR first`));
  }
  checkAgainstNar(ctx, cache, info, nar);

  // Before the references: an identical re-upload changes nothing, even if an upstream lost a reference since.
  const existing = await ctx.index.getPath(cache, hashPart);
  if (existing) return sameAsExisting(ctx, info, existing.narinfo, base, cache);
  const inCache = await checkReferences(ctx, cache, info);

  const keys = (await ctx.index.listKeys(cache)).filter((k) => k.state === 'active').map((k) => parseSecretKey(k.secretKey));
  // The stored NAR's facts are authoritative: fill in what the client left out.
  const complete: NarInfo = { ...info, compression: nar.compression, fileHash: parseHash(`sha256:${nar.fileHash}`), fileSize: nar.fileSize };
  const narinfo = formatNarInfo(signNarInfo(complete, keys, ctx.storeDir), ctx.storeDir);
  await ctx.store.put(narInfoKey(cache, hashPart), narinfo);
  let created: boolean;
  try {
    // The NAR and the references found in the cache must still be there when the path becomes
    // visible: garbage collection may have deleted them since they were checked.
    created = await ctx.index.putPath(
      {
        cache,
        hashPart,
        base,
        fileHash,
        narSize: info.narSize,
        references: [...new Set(info.references.map((r) => r.hashPart))],
        narinfo,
        createdAt: Date.now(),
      },
      { nar: true, references: [...inCache] },
    );
  } catch (error) {
    if (!(error instanceof IndexPreconditionError)) throw error;
    if (error.missingNar) {
      throw refused(ctx, cache, 'nar-missing', new Rejection('conflict', `field URL: ${info.url} was deleted from cache ${cache} meanwhile; upload the NAR again`));
    }
    const gone = info.references.filter((r) => error.missingPaths.includes(r.hashPart)).map(storePathBase);
    throw refused(ctx, cache, 'reference-missing', new Rejection('conflict', `field References: deleted from cache ${cache} meanwhile: ${gone.join(' ')}; upload references first`));
  }
  if (!created) {
    // Another upload of this path won the race; ours must agree with it.
    const winner = await ctx.index.getPath(cache, hashPart);
    if (winner) return sameAsExisting(ctx, info, winner.narinfo, base, cache);
  }
  return { narinfo, created };
}

/** Every reference is in the cache or, failing that, in one of its upstreams; those in the cache. */
async function checkReferences(ctx: PublishContext, cache: string, info: NarInfo): Promise<Set<string>> {
  const others = info.references.filter((r) => r.hashPart !== info.storePath.hashPart);
  const present = await ctx.index.presentPaths(cache, others.map((r) => r.hashPart));
  let missing: readonly StorePath[] = others.filter((r) => !present.has(r.hashPart));
  if (missing.length === 0) return present;
  let elsewhere = '';
  if (ctx.upstreams) {
    const found = await ctx.upstreams.findPresent(cache, missing.map((r) => r.hashPart));
    missing = missing.filter((r) => !found.present.has(r.hashPart));
    if (found.upstreams.length > 0) elsewhere = ` (nor in its upstreams ${found.upstreams.join(' ')})`;
  }
  if (missing.length > 0) {
    const bases = missing.map(storePathBase).join(' ');
    throw refused(ctx, cache, 'reference-missing', new Rejection('conflict', `field References: not in cache ${cache}: ${bases}${elsewhere}; upload references first`));
  }
  return present;
}

function checkAgainstNar(ctx: PublishContext, cache: string, info: NarInfo, nar: NarRecord): void {
  const differs = (field: string, claimed: string | number, actual: string | number) =>
    refused(
      ctx,
      cache,
      field.endsWith('Hash') ? 'hash' : field.endsWith('Size') ? 'size' : 'compression',
      new Rejection('mismatch', `field ${field}: the narinfo says ${claimed} but the uploaded NAR ${info.url} has ${actual}`),
    );
  if (info.compression !== nar.compression) throw differs('Compression', info.compression, nar.compression);
  if (info.fileHash && formatHash(info.fileHash) !== `sha256:${nar.fileHash}`) {
    throw differs('FileHash', formatHash(info.fileHash), `sha256:${nar.fileHash}`);
  }
  if (info.fileSize !== undefined && info.fileSize !== nar.fileSize) throw differs('FileSize', info.fileSize, nar.fileSize);
  if (!hashEquals(info.narHash, parseHash(nar.narHash))) throw differs('NarHash', formatHash(info.narHash), nar.narHash);
  if (info.narSize !== nar.narSize) throw differs('NarSize', info.narSize, nar.narSize);
}

function sameAsExisting(ctx: PublishContext, info: NarInfo, existingText: string, base: string, cache: string): PublishedPath {
  const existing = parseNarInfo(existingText, ctx.storeDir);
  const refs = (i: NarInfo) => i.references.map(storePathBase).sort().join(' ');
  if (!hashEquals(existing.narHash, info.narHash) || existing.narSize !== info.narSize || refs(existing) !== refs(info)) {
    throw refused(ctx, cache, 'conflict', new Rejection('conflict', `${base} is already in cache ${cache} with different contents; a store path cannot change`));
  }
  return { narinfo: existingText, created: false };
}
