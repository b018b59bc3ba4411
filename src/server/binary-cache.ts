// The Nix binary cache protocol under /<cache>/: what stock `nix` GETs to
// substitute and PUTs with `nix copy --to http://…`.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { CacheRecord, Permission } from '../index/cache-index.ts';
import { isHashPart, parseStorePathBase } from '../nix/store-path.ts';
import { cacheInfoText } from '../services/cache-admin.ts';
import type { Larder } from '../services/larder.ts';
import { UpstreamFailure } from '../services/mirror/mirror.ts';
import { receiveNar, receiveNarInfo } from '../services/publish.ts';
import { listingKey, logKey } from '../storage/layout.ts';
import type { OpenBlob } from '../storage/blob-store.ts';
import { noteCache } from '../observability/request-facts.ts';
import { principalOf, requirePermission } from './access.ts';
import { HttpError } from './http-error.ts';
import { parseRange } from './range.ts';
import { checkDeclaredLength, readSmallBody } from './request-body.ts';
import { TtlCache } from '../services/ttl-cache.ts';

type Resource =
  | { kind: 'cache-info' }
  | { kind: 'narinfo'; hashPart: string }
  | { kind: 'listing'; hashPart: string }
  | { kind: 'nar'; fileName: string }
  | { kind: 'log'; drvBase: string };

const HASH_FILE = /^([^./]+)\.(narinfo|ls)$/;

/** What a path under /<cache>/ names; undefined for anything else (a 404). */
export function parseResource(rest: string): Resource | undefined {
  if (rest === 'nix-cache-info') return { kind: 'cache-info' };
  const file = HASH_FILE.exec(rest);
  if (file && isHashPart(file[1]!)) {
    return file[2] === 'narinfo' ? { kind: 'narinfo', hashPart: file[1]! } : { kind: 'listing', hashPart: file[1]! };
  }
  if (rest.startsWith('nar/') && !rest.slice(4).includes('/')) return { kind: 'nar', fileName: rest.slice(4) };
  if (rest.startsWith('log/')) {
    try {
      parseStorePathBase(rest.slice(4));
      return { kind: 'log', drvBase: rest.slice(4) };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

const TEXT = 'text/plain; charset=utf-8';

/** A NAR a mirroring cache may fetch from its upstream when it is not stored. */
interface MirroredFile {
  readonly cache: string;
  readonly fileName: string;
}

export class BinaryCacheProtocol {
  private readonly larder: Larder;
  /** Cache settings change rarely; a second of staleness across replicas is fine. */
  private readonly caches = new TtlCache<CacheRecord>(1000, 1000);
  /**
   * Positive narinfos only: a push must be visible at once, so absence is never cached. Each is
   * kept with the cache's generation when read, and served only while the cache record (at most a
   * second old) still has that generation: a deletion on any replica bumps it.
   */
  private readonly narinfos = new TtlCache<{ narinfo: string; generation: number }>(50_000, 10_000);

  constructor(larder: Larder) {
    this.larder = larder;
  }

  forgetCache(name: string): void {
    this.caches.delete(name);
  }

  private async cache(name: string): Promise<CacheRecord> {
    let cache = this.caches.get(name);
    if (!cache) {
      cache = await this.larder.index.getCache(name);
      if (!cache) throw new HttpError(404, `no cache '${name}'`);
      this.caches.set(name, cache);
    }
    return cache;
  }

  async handle(req: IncomingMessage, res: ServerResponse, cacheName: string, rest: string): Promise<void> {
    const method = req.method ?? 'GET';
    const reading = method === 'GET' || method === 'HEAD';
    if (!reading && method !== 'PUT') throw new HttpError(405, `${method} is not supported here`, { Allow: 'GET, HEAD, PUT' });
    const cache = await this.cache(cacheName);
    // It exists: metrics may label the request with it.
    noteCache(req, cache.name);
    const permission: Permission = reading ? 'read' : 'write';
    // Reading a public cache needs no token, so a stale or foreign one (netrc entries match by
    // host alone, whatever the port) must not turn a public read into a 401.
    if (!(reading && cache.public)) requirePermission(await principalOf(this.larder.tokens, req), cache, permission);
    const resource = parseResource(rest);
    if (!resource) throw new HttpError(reading ? 404 : 400, `'${rest}' is not a binary cache file`);
    if (reading) await this.read(req, res, cache, resource);
    else await this.write(req, res, cache, resource);
  }

  private async read(req: IncomingMessage, res: ServerResponse, cache: CacheRecord, resource: Resource): Promise<void> {
    switch (resource.kind) {
      case 'cache-info':
        return sendText(res, 200, cacheInfoText(this.larder, cache), 'text/x-nix-cache-info');
      case 'narinfo': {
        const key = `${cache.name}/${resource.hashPart}`;
        const cached = this.narinfos.get(key);
        let narinfo = cached?.generation === cache.generation ? cached.narinfo : undefined;
        if (narinfo === undefined) {
          narinfo = (await this.larder.index.getPath(cache.name, resource.hashPart))?.narinfo;
          if (narinfo !== undefined) {
            this.narinfos.set(key, { narinfo, generation: cache.generation });
          } else {
            // A mirror asks its upstreams; the answer is cached by the mirror, not here.
            narinfo = cache.mirror ? await this.larder.mirror.narinfo(cache.name, resource.hashPart) : undefined;
            if (narinfo === undefined) {
              this.larder.accesses.narinfoMissing(cache.name);
              throw new HttpError(404, `${resource.hashPart}.narinfo is not in cache '${cache.name}'`);
            }
            this.larder.accesses.narinfoServed(cache.name, resource.hashPart);
            return sendText(res, 200, narinfo, 'text/x-nix-narinfo');
          }
        }
        // Noted in memory only; written in batches (the hot path does no writes).
        this.larder.accesses.narinfoServed(cache.name, resource.hashPart);
        return sendText(res, 200, narinfo, 'text/x-nix-narinfo');
      }
      case 'nar': {
        const mirror = cache.mirror ? { cache: cache.name, fileName: resource.fileName } : undefined;
        const fileHash = /^([0-9a-z]{52})\.nar/.exec(resource.fileName)?.[1];
        // Noted once the whole NAR has gone out: before the connection can close, so that a
        // shutdown (which waits for connections, then writes the notes) never misses it.
        if (fileHash && req.method === 'GET') {
          res.once('finish', () => {
            if (res.statusCode === 200) this.larder.accesses.narDownloaded(cache.name, fileHash);
            else if (res.statusCode === 206) this.larder.accesses.nar(cache.name, fileHash);
          });
        }
        const sent = await this.sendBlob(req, res, `${cache.name}/nar/${resource.fileName}`, 'application/x-nix-nar', mirror);
        if (fileHash && req.method === 'GET' && mirror && sent === 'stored') void this.countSaved(cache.name, fileHash, res);
        return;
      }
      case 'listing':
        await this.sendBlob(req, res, listingKey(cache.name, resource.hashPart), 'application/json');
        return;
      case 'log':
        await this.sendBlob(req, res, logKey(cache.name, resource.drvBase), TEXT);
        return;
    }
  }

  /**
   * Serves a stored file. For a mirroring cache (`mirrorFile` set), a NAR not stored yet is fetched
   * from the upstream that vouched for it and streamed as it arrives. Tells which it was.
   */
  private async sendBlob(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    contentType: string,
    mirror?: MirroredFile,
  ): Promise<'stored' | 'mirrored'> {
    const headers: Record<string, string | number> = { 'Content-Type': contentType, 'Accept-Ranges': 'bytes' };
    const notFound = () => new HttpError(404, `${key} not found`);
    const mirrored = async (): Promise<'stored' | 'mirrored'> => {
      if (!mirror) throw notFound();
      return this.sendMirrored(req, res, key, contentType, mirror);
    };
    if (req.method !== 'HEAD' && req.headers.range === undefined) {
      // The common download: one open tells the size, no separate stat.
      return (await this.sendWhole(res, key, headers)) ? 'stored' : mirrored();
    }
    const size = await this.larder.store.stat(key);
    if (size === undefined) return mirrored();
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': size }).end();
      return 'stored';
    }
    const range = parseRange(req.headers.range, size);
    if (range.kind === 'unsatisfiable') {
      throw new HttpError(416, `range not satisfiable for ${size} bytes`, { 'Content-Range': `bytes */${size}` });
    }
    const blob = await this.larder.store.open(key, range.kind === 'range' ? range.range : undefined);
    if (!blob) throw notFound();
    if (range.kind === 'range') {
      const { start, end } = range.range;
      res.writeHead(206, { ...headers, 'Content-Length': end - start + 1, 'Content-Range': `bytes ${start}-${end}/${blob.size}` });
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': blob.size });
    }
    await sendBody(blob, res);
    return 'stored';
  }

  /** A whole stored file with a 200; false when it is not there. */
  private async sendWhole(res: ServerResponse, key: string, headers: Record<string, string | number>): Promise<boolean> {
    const blob = await this.larder.store.open(key);
    if (!blob) return false;
    res.writeHead(200, { ...headers, 'Content-Length': blob.size });
    await sendBody(blob, res);
    return true;
  }

  /** A NAR of a mirroring cache that is not stored: from the upstream, or stored meanwhile. */
  private async sendMirrored(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    contentType: string,
    { cache, fileName }: MirroredFile,
  ): Promise<'stored' | 'mirrored'> {
    const notFound = () => new HttpError(404, `${key} not found`);
    const { mirror } = this.larder;
    try {
      if (req.method === 'HEAD') {
        const known = await mirror.narSize(cache, fileName);
        if (!known) throw notFound();
        res.writeHead(200, { 'Content-Type': contentType, ...(known.size !== undefined && { 'Content-Length': known.size }) }).end();
        return 'mirrored';
      }
      const nar = await mirror.fetchNar(cache, fileName);
      if (!nar) throw notFound();
      if (nar.kind === 'stored') {
        // Fetched by another request or replica meanwhile: the verified copy, whole (a Range is ignored).
        if (!(await this.sendWhole(res, key, { 'Content-Type': contentType }))) throw notFound();
        return 'stored';
      }
      // No Accept-Ranges: what is still arriving cannot be served in parts.
      res.writeHead(200, { 'Content-Type': contentType, ...(nar.size !== undefined && { 'Content-Length': nar.size }) });
      await pipeline(nar.stream, res);
      return 'mirrored';
    } catch (error) {
      if (error instanceof UpstreamFailure && !res.headersSent) throw new HttpError(error.status, error.message);
      throw error;
    }
  }

  /** Bytes of a NAR fetched from an upstream earlier, served from here: what the mirror saved. */
  private async countSaved(cacheName: string, fileHash: string, res: ServerResponse): Promise<void> {
    try {
      const nar = await this.larder.index.getNar(cacheName, fileHash);
      if (nar?.upstream !== undefined && res.writableFinished) this.larder.telemetry.upstreamBytesSaved(cacheName, nar.fileSize);
    } catch {
      // A metric, not worth an error: the index being down shows elsewhere.
    }
  }

  private async write(req: IncomingMessage, res: ServerResponse, cache: CacheRecord, resource: Resource): Promise<void> {
    const { larder } = this;
    const limit = larder.settings.maxSmallBodySize;
    switch (resource.kind) {
      case 'cache-info':
        // `nix copy` PUTs this when it thinks the cache is new; the cache's own settings stand.
        req.resume();
        return sendText(res, 204, '');
      case 'nar': {
        checkDeclaredLength(req, larder.maxNarSize);
        continueIfExpected(req, res);
        const { created } = await receiveNar(larder, cache.name, resource.fileName, req);
        return sendText(res, created ? 201 : 200, '');
      }
      case 'narinfo': {
        continueIfExpected(req, res);
        const text = (await readSmallBody(req, limit)).toString('utf8');
        const { created } = await receiveNarInfo(larder, cache.name, resource.hashPart, text);
        this.narinfos.delete(`${cache.name}/${resource.hashPart}`);
        // An upload that found the path present: an access, as a download would be.
        if (!created) larder.accesses.path(cache.name, resource.hashPart);
        return sendText(res, created ? 201 : 200, '');
      }
      case 'listing': {
        continueIfExpected(req, res);
        const body = await readSmallBody(req, limit);
        checkListing(body);
        await larder.store.put(listingKey(cache.name, resource.hashPart), body);
        return sendText(res, 201, '');
      }
      case 'log': {
        continueIfExpected(req, res);
        await larder.store.put(logKey(cache.name, resource.drvBase), await readSmallBody(req, limit));
        return sendText(res, 201, '');
      }
    }
  }
}

function checkListing(body: Buffer): void {
  let listing: unknown;
  try {
    listing = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'listing is not valid JSON');
  }
  const { version, root } = (listing ?? {}) as { version?: unknown; root?: unknown };
  if (version !== 1 || typeof root !== 'object' || root === null) {
    throw new HttpError(400, 'listing: expected {"version":1,"root":{…}}');
  }
}

/** Answers `Expect: 100-continue` only once the request is known to be acceptable. */
function continueIfExpected(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
}

export function sendText(res: ServerResponse, status: number, body: string, contentType = TEXT): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** A stored blob's bytes as the response body, the store's cheapest way. */
function sendBody(blob: OpenBlob, res: ServerResponse): Promise<void> {
  return blob.sendTo ? blob.sendTo(res) : pipeline(blob.stream, res);
}
