// The HTTP front: splits the path, hands /api/v1/ to the admin API and
// /<cache>/… to the binary cache protocol, and turns every failure into a
// status that tells the truth (4xx for the client's mistakes, 503 when the
// index or storage cannot answer, 500 only for larder's own bugs).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { IndexUnavailableError } from '../index/cache-index.ts';
import type { Larder } from '../services/larder.ts';
import { Rejection } from '../services/rejection.ts';
import { StorageUnavailableError } from '../storage/blob-store.ts';
import type { Dashboard } from '../dashboard/dashboard.ts';
import { AdminApi, sendJson } from './admin-api.ts';
import { readiness } from './health.ts';
import { BinaryCacheProtocol, sendText } from './binary-cache.ts';
import { HttpError, REJECTION_STATUS } from './http-error.ts';


const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNABORTED']);

/** Path segments, percent-decoded; refuses anything that could name a file outside a cache. */
export function pathSegments(url: string): string[] {
  const path = url.split('?', 1)[0]!;
  if (!path.startsWith('/')) throw new HttpError(400, 'request path must start with /');
  const raw = path.slice(1).split('/');
  return raw.map((segment) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw new HttpError(400, `bad percent-encoding in '${segment}'`);
    }
    if (decoded === '.' || decoded === '..' || decoded.includes('/') || decoded.includes('\\') || decoded.includes('\0')) {
      throw new HttpError(400, `path segment '${segment}' is not allowed`);
    }
    return decoded;
  });
}

export interface LarderServerOptions {
  /** Called with each request's outcome, for logs and metrics. */
  readonly onResponse?: (req: IncomingMessage, res: ServerResponse, error?: unknown) => void;
  /** Answers GET /metrics; without it /metrics is a 404. */
  readonly metrics?: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** Told of each of larder's own bugs a request met (a 500), besides the line on stderr. */
  readonly onInternalError?: (req: IncomingMessage, error: unknown) => void;
}

export function createLarderServer(larder: Larder, options: LarderServerOptions = {}): Server {
  const protocol = new BinaryCacheProtocol(larder);
  const api = new AdminApi(larder, (name) => protocol.forgetCache(name));
  // Loaded on its first page: a server only ever scraped and substituted from keeps its memory.
  let dashboard: Promise<Dashboard> | undefined;
  const openDashboard = () => (dashboard ??= import('../dashboard/dashboard.ts').then(({ Dashboard }) => new Dashboard(larder)));
  // Deletions here are seen at once here; on other processes, within the cache record's second.
  larder.onPathsDeleted((name) => protocol.forgetCache(name));

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const segments = pathSegments(req.url ?? '/');
    if (segments[0] === 'api') {
      if (segments[1] !== 'v1') throw new HttpError(404, 'the API lives under /api/v1/');
      return api.handle(req, res, segments.slice(2));
    }
    // The web dashboard: `/` and `/ui/…` (a reserved cache name).
    if ((segments.length === 1 && segments[0] === '') || segments[0] === 'ui') return (await openDashboard()).handle(req, res, segments);
    if (segments.length === 1 && segments[0] === 'healthz') return sendText(res, 200, 'ok\n');
    if (segments.length === 1 && segments[0] === 'metrics' && options.metrics) return options.metrics(req, res);
    if (segments.length === 1 && segments[0] === 'readyz') {
      const state = await readiness(larder);
      res.setHeader('Cache-Control', 'no-store');
      return sendJson(res, state.ready ? 200 : 503, state);
    }
    if (segments.length < 2 || segments[0] === '') throw new HttpError(404, 'not found');
    return protocol.handle(req, res, segments[0]!, segments.slice(1).join('/'));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let failure: unknown;
    try {
      await route(req, res);
    } catch (error) {
      failure = error;
      answerError(req, res, error, options.onInternalError);
    } finally {
      options.onResponse?.(req, res, failure);
    }
  }

  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => void handle(req, res));
  // No limit on a whole request (a NAR may take hours), but a connection silent both ways for as
  // long as Nix waits on a stalled transfer (stalled-download-timeout) is dropped: a client that
  // stopped sending its body mid-upload otherwise holds its socket and temporary file forever.
  server.timeout = 300_000;
  // Answer `Expect: 100-continue` ourselves, after auth and validation, so a refused upload is never sent.
  server.on('checkContinue', (req, res) => void handle(req, res));
  return server;
}

function answerError(req: IncomingMessage, res: ServerResponse, error: unknown, onInternalError?: LarderServerOptions['onInternalError']): void {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // req.socket, not res.socket: a response waiting behind the previous one on a keep-alive
  // connection has no socket yet, and must still be answered.
  if ((code && CLIENT_GONE.has(code)) || req.socket.destroyed) {
    res.destroy();
    return;
  }
  let status = 500;
  let message = 'internal error';
  let headers: Record<string, string> = {};
  if (error instanceof HttpError) {
    ({ status, message } = error);
    headers = { ...error.headers };
  } else if (error instanceof Rejection) {
    status = REJECTION_STATUS[error.kind];
    message = error.message;
  } else if (error instanceof StorageUnavailableError || error instanceof IndexUnavailableError) {
    status = 503;
    message = error.message;
    headers = { 'Retry-After': '5' };
  } else {
    process.stderr.write(`larder: internal error on ${req.method} ${req.url}: ${(error as Error)?.stack ?? String(error)}\n`);
    onInternalError?.(req, error);
  }
  if (res.headersSent) {
    // Mid-body: the only honest signal left is a broken connection.
    res.destroy();
    return;
  }
  // An unread request body would be parsed as the next request: close after answering.
  if (!req.complete) headers.Connection = 'close';
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (req.url?.startsWith('/api/')) sendJson(res, status, { error: message });
  else sendText(res, status, `${message}\n`);
}
