// `larder verify`: an fsck of the index against the blob store. For every
// path of a cache: its narinfo (as indexed, and as the file the store holds)
// names its own store path and NAR, every signature by one of the cache's keys
// verifies and a trusted one is there, every reference is in the cache (or was
// recorded as held by one of its upstreams, as publish.ts accepted it), and its
// NAR record and file agree: FileSize, FileHash and, decompressed and parsed,
// NarHash, NarSize and the NAR grammar. Then the orphans garbage collection
// would remove (gc.ts): NAR records no path uses, files no record knows, and
// temporary uploads; those younger than the upload grace period are uploads in
// flight, not orphans. Reads only: it changes nothing.
//
// Memory stays bounded: paths come in pages, NARs stream through a few at a
// time, and only NARs that several paths share are remembered across pages.

import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { text } from 'node:stream/consumers';
import { createDecompressor } from '../compression/decompress.ts';
import type { CacheIndex, NarRecord, PathRecord } from '../index/cache-index.ts';
import { validSigners } from '../nix/fingerprint.ts';
import { formatHash, hashEquals, parseHash } from '../nix/hash.ts';
import type { Compression } from '../nix/compression.ts';
import { NarVerifier } from '../nix/nar-decoder.ts';
import { NarError } from '../nix/nar-parser.ts';
import { parseNarInfo, type NarInfo } from '../nix/narinfo.ts';
import { encodeNix32 } from '../nix/nix32.ts';
import { parsePublicKey, trustedKeyMap, type PublicKey } from '../nix/signing-key.ts';
import { storePathBase } from '../nix/store-path.ts';
import { StorageUnavailableError, type BlobStore } from '../storage/blob-store.ts';
import { narInfoKey, narKey } from '../storage/layout.ts';
import { NAR_FILE, NARINFO_FILE } from './gc.ts';
import { parseNarFileName } from './publish.ts';
import { Rejection } from './rejection.ts';

export interface VerifyContext {
  readonly index: CacheIndex;
  readonly store: BlobStore;
  readonly storeDir: string;
  readonly gcSettings: { readonly uploadGraceMs: number };
  readonly now: () => number;
}

export interface VerifyOptions {
  /** One cache; every cache when absent. */
  readonly cache?: string;
  /** Decompress and hash every NAR (default); false checks only that each file is there with its size. */
  readonly narHashes?: boolean;
  /** NARs read at once (default 4). */
  readonly concurrency?: number;
  /** Called with each problem as it is found (they are in the report too). */
  readonly onProblem?: (problem: VerifyProblem) => void;
}

export type ProblemKind =
  | 'narinfo' // the indexed narinfo is unreadable or disagrees with its index record
  | 'narinfo-file' // the store's narinfo file is missing or differs from the index's
  | 'signature' // a signature by a cache key does not verify, or no trusted key signed it
  | 'reference' // a reference neither in the cache nor recorded as held by an upstream
  | 'nar-record' // the path's NAR has no record, or the record disagrees with the narinfo
  | 'nar-file' // the NAR file is missing, or its size or FileHash is wrong
  | 'nar-contents' // the NAR decompresses to something else than the narinfo says, or is malformed
  | 'orphan-nar' // a NAR record no path uses, older than the upload grace period
  | 'orphan-file' // a narinfo, listing or NAR file no index record knows, older than the grace period
  | 'abandoned'; // temporary files or unfinished multipart uploads older than the grace period

export interface VerifyProblem {
  /** Empty for problems of the whole store (abandoned uploads). */
  readonly cache: string;
  /** A store path, or a blob key for files without a path. */
  readonly subject: string;
  readonly kind: ProblemKind;
  readonly message: string;
}

export interface CacheVerification {
  readonly cache: string;
  readonly paths: number;
  /** NAR files checked (each once, however many paths share it). */
  readonly nars: number;
  /** Bytes of NAR files read and hashed (0 without NAR hashes). */
  readonly bytesRead: number;
  /** References accepted because an upstream was recorded as holding them. */
  readonly upstreamReferences: number;
  /** Younger than the upload grace period, so not orphans: NAR records without a path, and files without a record. */
  readonly inFlight: { readonly nars: number; readonly files: number };
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly narHashes: boolean;
  readonly caches: readonly CacheVerification[];
  readonly problems: readonly VerifyProblem[];
}

const PAGE = 500;

export async function verify(ctx: VerifyContext, options: VerifyOptions = {}): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  const report = (problem: VerifyProblem) => {
    problems.push(problem);
    options.onProblem?.(problem);
  };
  let names: string[];
  if (options.cache !== undefined) {
    if (!(await ctx.index.getCache(options.cache))) throw new Rejection('not-found', `no cache '${options.cache}'`);
    names = [options.cache];
  } else {
    names = (await ctx.index.listCaches()).map((c) => c.name).sort();
  }
  const narHashes = options.narHashes ?? true;
  const caches: CacheVerification[] = [];
  for (const cache of names) {
    caches.push(await new CacheVerifier(ctx, cache, narHashes, options.concurrency ?? 4, report).run());
  }
  const abandoned = await ctx.store.sweepAbandoned(ctx.gcSettings.uploadGraceMs, true);
  if (abandoned > 0) {
    report({
      cache: '',
      subject: '(blob store)',
      kind: 'abandoned',
      message: `${abandoned} temporary file${abandoned === 1 ? '' : 's'} or unfinished upload${abandoned === 1 ? '' : 's'} older than the upload grace period (garbage collection removes them)`,
    });
  }
  return { ok: problems.length === 0, narHashes, caches, problems };
}

/** At most `limit` of these at once. */
class Gate {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(limit: number) {
    this.#free = Math.max(1, limit);
  }
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

class CacheVerifier {
  readonly #ctx: VerifyContext;
  readonly #cache: string;
  readonly #narHashes: boolean;
  /** NAR files read at once. */
  readonly #gate: Gate;
  /** Paths checked at once (index lookups, narinfo files). */
  readonly #pathGate = new Gate(16);
  readonly #report: (problem: VerifyProblem) => void;
  readonly #now: number;
  /** Every key of the cache by name (retired ones too: their signatures must still verify). */
  #keys = new Map<string, PublicKey>();
  /** The active and published keys: those clients trust. */
  #trusted = new Map<string, PublicKey>();
  /** Keys trusted for each upstream, by URL: what vouches for paths the mirror fetched. */
  #upstreamKeys = new Map<string, ReadonlyMap<string, PublicKey>>();
  /** NARs several paths use: checked once. */
  #shared = new Set<string>();
  readonly #sharedChecked = new Map<string, Promise<void>>();
  #paths = 0;
  #nars = 0;
  #bytesRead = 0;
  #upstreamReferences = 0;
  #inFlightNars = 0;
  #inFlightFiles = 0;

  constructor(ctx: VerifyContext, cache: string, narHashes: boolean, concurrency: number, report: (problem: VerifyProblem) => void) {
    this.#ctx = ctx;
    this.#cache = cache;
    this.#narHashes = narHashes;
    this.#gate = new Gate(concurrency);
    this.#report = report;
    this.#now = ctx.now();
  }

  #problem(subject: string, kind: ProblemKind, message: string): void {
    this.#report({ cache: this.#cache, subject, kind, message });
  }

  async run(): Promise<CacheVerification> {
    const { index } = this.#ctx;
    const keys = await index.listKeys(this.#cache);
    this.#keys = trustedKeyMap(keys.map((k) => parsePublicKey(k.publicKey)));
    this.#trusted = trustedKeyMap(keys.filter((k) => k.state !== 'retired').map((k) => parsePublicKey(k.publicKey)));
    this.#shared = new Set(await index.sharedNars(this.#cache));
    for (const upstream of await index.listUpstreams(this.#cache)) {
      this.#upstreamKeys.set(upstream.url, trustedKeyMap(upstream.publicKeys.map((k) => parsePublicKey(k))));
    }

    for (let after = ''; ; ) {
      const page = await index.pathFactsPage(this.#cache, after, PAGE);
      if (page.length === 0) break;
      await this.#checkPage(page.map((p) => p.hashPart));
      after = page.at(-1)!.hashPart;
    }
    await this.#checkUnusedNars();
    await this.#checkFiles();
    return {
      cache: this.#cache,
      paths: this.#paths,
      nars: this.#nars,
      bytesRead: this.#bytesRead,
      upstreamReferences: this.#upstreamReferences,
      inFlight: { nars: this.#inFlightNars, files: this.#inFlightFiles },
    };
  }

  async #checkPage(hashParts: readonly string[]): Promise<void> {
    const { index } = this.#ctx;
    const records: PathRecord[] = [];
    for (const hashPart of hashParts) {
      const record = await index.getPath(this.#cache, hashPart);
      if (record) records.push(record); // else deleted since the page was read
    }
    this.#paths += records.length;
    const held = await this.#referencesHeld(records);
    await Promise.all(records.map((record) => this.#pathGate.run(() => this.#checkPath(record, held))));
  }

  /** Of the references these paths make, those in the cache or recorded as held by an upstream. */
  async #referencesHeld(records: readonly PathRecord[]): Promise<{ inCache: Set<string>; upstream: Set<string> }> {
    const { index } = this.#ctx;
    const wanted = [...new Set(records.flatMap((r) => r.references.filter((ref) => ref !== r.hashPart)))];
    const inCache = await index.presentPaths(this.#cache, wanted);
    const absent = wanted.filter((h) => !inCache.has(h));
    const upstream = new Set<string>();
    if (absent.length > 0) {
      for (const answer of await index.getUpstreamPresence(this.#cache, absent)) if (answer.present) upstream.add(answer.hashPart);
    }
    return { inCache, upstream };
  }

  async #checkPath(record: PathRecord, held: { inCache: Set<string>; upstream: Set<string> }): Promise<void> {
    const subject = `${this.#ctx.storeDir}/${record.base}`;
    let info: NarInfo;
    try {
      info = parseNarInfo(record.narinfo, this.#ctx.storeDir);
    } catch (error) {
      this.#problem(subject, 'narinfo', `the indexed narinfo does not parse: ${(error as Error).message}`);
      return;
    }
    const disagreements = this.#narInfoAgainstRecord(info, record);
    for (const message of disagreements) this.#problem(subject, 'narinfo', message);
    // A path the mirror fetched is vouched for by its upstream's signature, references included.
    const mirrored = await this.#vouchingUpstream(record, info);
    if (!mirrored) this.#checkSignatures(subject, info);
    for (const ref of info.references) {
      if (ref.hashPart === record.hashPart || held.inCache.has(ref.hashPart)) continue;
      if (held.upstream.has(ref.hashPart) || mirrored) this.#upstreamReferences++;
      else this.#problem(subject, 'reference', `reference ${storePathBase(ref)} is not in the cache (nor recorded as held by one of its upstreams)`);
    }
    await this.#checkNarInfoFile(subject, record);
    await this.#checkNar(subject, record, info);
  }

  /** For a path the mirror fetched, the upstream whose trusted key signed it; else undefined. */
  async #vouchingUpstream(record: PathRecord, info: NarInfo): Promise<string | undefined> {
    const nar = await this.#ctx.index.getNar(this.#cache, record.fileHash);
    const keys = nar?.upstream === undefined ? undefined : this.#upstreamKeys.get(nar.upstream);
    if (!keys) return undefined;
    return validSigners(info, keys, this.#ctx.storeDir).length > 0 ? nar!.upstream : undefined;
  }

  /** What an indexed narinfo says that its own index record contradicts. */
  #narInfoAgainstRecord(info: NarInfo, record: PathRecord): string[] {
    const out: string[] = [];
    if (storePathBase(info.storePath) !== record.base) out.push(`field StorePath: the narinfo names ${storePathBase(info.storePath)}`);
    let fileHash: string | undefined;
    try {
      if (!info.url.startsWith('nar/')) throw new Error('not under nar/');
      fileHash = parseNarFileName(info.url.slice(4)).fileHash;
    } catch {
      out.push(`field URL: '${info.url}' is not nar/<FileHash>.nar[.ext]`);
    }
    if (fileHash !== undefined && fileHash !== record.fileHash) out.push(`field URL: ${info.url} but the index records NAR ${record.fileHash}`);
    if (info.narSize !== record.narSize) out.push(`field NarSize: ${info.narSize} but the index records ${record.narSize}`);
    const refs = (hashParts: Iterable<string>) => [...new Set(hashParts)].sort().join(' ');
    if (refs(info.references.map((r) => r.hashPart)) !== refs(record.references)) {
      out.push(`field References: ${info.references.map(storePathBase).join(' ') || '(none)'} but the index records ${record.references.join(' ') || '(none)'}`);
    }
    return out;
  }

  #checkSignatures(subject: string, info: NarInfo): void {
    let trusted = false;
    for (const sig of info.sigs) {
      const name = sig.slice(0, sig.indexOf(':'));
      if (!this.#keys.has(name)) continue; // another party's signature: not ours to judge
      if (validSigners({ ...info, sigs: [sig] }, this.#keys, this.#ctx.storeDir).length === 0) {
        this.#problem(subject, 'signature', `signature by key ${name} does not verify`);
      } else if (this.#trusted.has(name)) {
        trusted = true;
      }
    }
    if (!trusted) {
      const names = [...this.#trusted.keys()].join(', ') || '(none)';
      this.#problem(subject, 'signature', `no valid signature by a key clients trust (${names})`);
    }
  }

  async #checkNarInfoFile(subject: string, record: PathRecord): Promise<void> {
    const key = narInfoKey(this.#cache, record.hashPart);
    const blob = await this.#ctx.store.open(key);
    if (!blob) {
      if (await this.#stillThere(record)) this.#problem(subject, 'narinfo-file', `${key} is missing from the blob store`);
      return;
    }
    const stored = await readAll(key, () => text(blob.stream));
    if (stored !== record.narinfo) this.#problem(subject, 'narinfo-file', `${key} differs from the narinfo the index serves`);
  }

  /** A path deleted while it was being checked (garbage collection) has no problems. */
  async #stillThere(record: PathRecord): Promise<boolean> {
    return (await this.#ctx.index.presentPaths(this.#cache, [record.hashPart])).has(record.hashPart);
  }

  async #checkNar(subject: string, record: PathRecord, info: NarInfo): Promise<void> {
    const { index } = this.#ctx;
    const nar = await index.getNar(this.#cache, record.fileHash);
    if (!nar) {
      if (!(await this.#stillThere(record))) return;
      const deleting = await index.narDeleting(this.#cache, record.fileHash);
      this.#problem(
        subject,
        'nar-record',
        deleting ? `its NAR ${info.url} is being deleted by garbage collection` : `its NAR ${info.url} has no record in the index`,
      );
      return;
    }
    for (const message of narInfoAgainstNar(info, nar)) this.#problem(subject, 'nar-record', message);
    if (this.#shared.has(nar.fileHash)) {
      let checked = this.#sharedChecked.get(nar.fileHash);
      if (!checked) {
        checked = this.#checkNarFile(subject, record, nar);
        this.#sharedChecked.set(nar.fileHash, checked);
      }
      return checked;
    }
    return this.#checkNarFile(subject, record, nar);
  }

  /** The NAR file against its record: there, its size, and with NAR hashes its FileHash, NarHash, NarSize and grammar. */
  #checkNarFile(subject: string, record: PathRecord, nar: NarRecord): Promise<void> {
    return this.#gate.run(async () => {
      const key = narKey(this.#cache, nar.url);
      this.#nars++;
      if (!this.#narHashes) {
        const size = await this.#ctx.store.stat(key);
        if (size === undefined) {
          if (await this.#stillThere(record)) this.#problem(subject, 'nar-file', `${key} is missing from the blob store`);
        } else if (size !== nar.fileSize) {
          this.#problem(subject, 'nar-file', `${key} has ${size} bytes but FileSize is ${nar.fileSize}`);
        }
        return;
      }
      const blob = await this.#ctx.store.open(key);
      if (!blob) {
        if (await this.#stillThere(record)) this.#problem(subject, 'nar-file', `${key} is missing from the blob store`);
        return;
      }
      if (blob.size !== nar.fileSize) this.#problem(subject, 'nar-file', `${key} has ${blob.size} bytes but FileSize is ${nar.fileSize}`);
      const outcome = await readNar(key, blob.stream, parseNarFileName(nar.url.slice(4)).compression);
      this.#bytesRead += outcome.fileSize;
      if (outcome.fileHash !== undefined && outcome.fileHash !== nar.fileHash) {
        this.#problem(subject, 'nar-file', `${key} hashes to sha256:${outcome.fileHash}, not its FileHash sha256:${nar.fileHash}`);
      }
      if (outcome.invalid !== undefined || !outcome.narHash || outcome.narSize === undefined) {
        this.#problem(subject, 'nar-contents', `${key}: ${outcome.invalid}`);
        return;
      }
      const narHash = formatHash({ algorithm: 'sha256', digest: outcome.narHash });
      if (narHash !== nar.narHash) this.#problem(subject, 'nar-contents', `${key} decompresses to NarHash ${narHash}, not ${nar.narHash}`);
      if (outcome.narSize !== nar.narSize) this.#problem(subject, 'nar-contents', `${key} decompresses to ${outcome.narSize} bytes, not NarSize ${nar.narSize}`);
    });
  }

  /** NAR records no path uses: orphans once older than the grace period; a record's file must be there whatever its age. */
  async #checkUnusedNars(): Promise<void> {
    const { index, store } = this.#ctx;
    const graceStart = this.#now - this.#ctx.gcSettings.uploadGraceMs;
    const rules = { createdBefore: Number.MAX_SAFE_INTEGER, staleClaimBefore: -1, at: this.#now };
    for (let after = ''; ; ) {
      const page = await index.orphanNarsPage(this.#cache, rules, after, PAGE);
      if (page.length === 0) break;
      for (const claim of page) {
        const nar = await index.getNar(this.#cache, claim.fileHash);
        if (!nar) continue; // claimed or deleted since
        const key = narKey(this.#cache, nar.url);
        if ((await store.stat(key)) === undefined) {
          this.#problem(key, 'nar-file', `the index records NAR ${nar.url} but the blob store has no such file`);
        } else if (nar.createdAt >= graceStart) {
          this.#inFlightNars++;
        } else {
          this.#problem(key, 'orphan-nar', `NAR ${nar.url} is used by no path (uploaded without its narinfo; garbage collection removes it)`);
        }
      }
      after = page.at(-1)!.fileHash;
    }
  }

  /** Narinfo, listing and NAR files under the cache's prefix that no index record knows. */
  async #checkFiles(): Promise<void> {
    const { index, store } = this.#ctx;
    const graceStart = this.#now - this.#ctx.gcSettings.uploadGraceMs;
    let pending: { key: string; modifiedAt: number; hashPart?: string; fileHash?: string }[] = [];
    const settle = async () => {
      const pathParts = pending.flatMap((f) => (f.hashPart ? [f.hashPart] : []));
      const narParts = pending.flatMap((f) => (f.fileHash ? [f.fileHash] : []));
      const paths = pathParts.length > 0 ? await index.presentPaths(this.#cache, pathParts) : new Set<string>();
      const nars = narParts.length > 0 ? await index.presentNars(this.#cache, narParts) : new Set<string>();
      for (const file of pending) {
        if (file.hashPart ? paths.has(file.hashPart) : nars.has(file.fileHash!)) continue;
        if (file.modifiedAt >= graceStart) this.#inFlightFiles++;
        else this.#problem(file.key, 'orphan-file', 'no index record knows this file (garbage collection removes it; `larder reindex` adopts narinfos)');
      }
      pending = [];
    };
    for await (const entry of store.listEntries(this.#cache)) {
      const info = NARINFO_FILE.exec(entry.key);
      const nar = info ? null : NAR_FILE.exec(entry.key);
      if (info) pending.push({ key: entry.key, modifiedAt: entry.modifiedAt, hashPart: info[1]! });
      else if (nar) pending.push({ key: entry.key, modifiedAt: entry.modifiedAt, fileHash: nar[1]! });
      else continue;
      if (pending.length >= PAGE) await settle();
    }
    if (pending.length > 0) await settle();
  }
}

/** The narinfo's fields against the NAR record it names (what publish.ts checked on the way in). */
function narInfoAgainstNar(info: NarInfo, nar: NarRecord): string[] {
  const out: string[] = [];
  const differs = (field: string, claimed: string | number, actual: string | number) =>
    out.push(`field ${field}: the narinfo says ${claimed} but the NAR record of ${nar.url} has ${actual}`);
  if (info.url !== nar.url) differs('URL', info.url, nar.url);
  if (info.compression !== nar.compression) differs('Compression', info.compression, nar.compression);
  if (info.fileHash && formatHash(info.fileHash) !== `sha256:${nar.fileHash}`) differs('FileHash', formatHash(info.fileHash), `sha256:${nar.fileHash}`);
  if (info.fileSize !== undefined && info.fileSize !== nar.fileSize) differs('FileSize', info.fileSize, nar.fileSize);
  if (!hashEquals(info.narHash, parseHash(nar.narHash))) differs('NarHash', formatHash(info.narHash), nar.narHash);
  if (info.narSize !== nar.narSize) differs('NarSize', info.narSize, nar.narSize);
  return out;
}

interface NarReading {
  /** Bytes of the file read. */
  readonly fileSize: number;
  /** nix32 sha256 of the file; undefined when the reading stopped before its end (undecompressable data). */
  readonly fileHash: string | undefined;
  /** What is wrong with its contents, if anything; else NarHash and NarSize. */
  readonly invalid?: string;
  readonly narHash?: Buffer;
  readonly narSize?: number;
}

/**
 * Streams a stored NAR file through sha256 (FileHash), the decompressor and
 * the NAR verifier (NarHash, NarSize, grammar). A malformed NAR is an answer
 * (and the file is still read to its end, for its FileHash); a store that
 * fails mid-read is StorageUnavailableError.
 */
async function readNar(key: string, source: Readable, compression: Compression): Promise<NarReading> {
  const fileHasher = createHash('sha256');
  let fileSize = 0;
  let sourceError: unknown;
  let ended = false;
  const verifier = new NarVerifier();
  const decompressor = createDecompressor(compression);
  let decompressError: unknown;
  decompressor.once('error', (error) => (decompressError = error));
  const tap = async function* (input: AsyncIterable<Buffer>) {
    try {
      for await (const chunk of input) {
        fileHasher.update(chunk);
        fileSize += chunk.length;
        yield chunk;
      }
      ended = true;
    } catch (error) {
      sourceError = error;
      throw error;
    }
  };
  let invalid: string | undefined;
  const check = (error: unknown) => {
    if (!(error instanceof NarError)) throw error;
    invalid = `NAR is malformed: ${error.message}`;
  };
  try {
    await pipeline(source, tap, decompressor, async (input: AsyncIterable<Buffer>) => {
      for await (const chunk of input) {
        if (invalid !== undefined) continue; // drained, so that the whole file is hashed
        try {
          verifier.push(chunk);
        } catch (error) {
          check(error);
        }
      }
    });
  } catch (error) {
    if (sourceError !== undefined && error === sourceError) {
      throw error instanceof StorageUnavailableError ? error : new StorageUnavailableError(`storage: cannot read ${key}: ${(error as Error).message}`, { cause: error });
    }
    if (decompressError === undefined || error !== decompressError) throw error;
    invalid = `not valid ${compression} data: ${(error as Error).message}`;
  }
  const fileHash = ended ? encodeNix32(fileHasher.digest()) : undefined;
  if (invalid !== undefined) return { fileSize, fileHash, invalid };
  try {
    const { narHash, narSize } = verifier.finish();
    return { fileSize, fileHash, narHash, narSize };
  } catch (error) {
    check(error);
    return { fileSize, fileHash, invalid: invalid! };
  }
}

/** Reads a small blob; a store failing mid-read is StorageUnavailableError. */
async function readAll<T>(key: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw error instanceof StorageUnavailableError ? error : new StorageUnavailableError(`storage: cannot read ${key}: ${(error as Error).message}`, { cause: error });
  }
}
