// Watches every request a server answers: when its response closes (complete
// or cut short), it counts the request, its duration and the bytes that
// actually crossed the socket, and writes one log line.
//
// Bytes come from the socket's counters, so that a streamed NAR counts what was
// written, an aborted download what was sent before the client left, and an
// upload what was read. A keep-alive socket carries requests one after the
// other: each is charged what moved since the previous one's close.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from './logger.ts';
import type { LarderMetrics } from './metrics.ts';
import { factsOf } from './request-facts.ts';
import { routeOf, type Route } from './route.ts';

const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);

/** A method as a metric label: the standard ones, anything else as OTHER. */
export function methodLabel(method: string | undefined): string {
  return method && METHODS.has(method) ? method : 'OTHER';
}

export interface ObservedRequest {
  readonly method: string;
  readonly url: string;
  readonly route: Route;
  readonly cache: string | undefined;
  /** undefined when the client left before any answer. */
  readonly status: number | undefined;
  /** False when the connection closed before the answer was complete. */
  readonly completed: boolean;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly durationMs: number;
  readonly token: { readonly id: string; readonly label: string } | undefined;
  readonly remote: string | undefined;
}

/** Calls `record` for every request `server` answers, once its response has closed. */
export function onEveryRequest(server: Server, record: (observed: ObservedRequest) => void): void {
  const accounted = new WeakMap<Socket, { read: number; written: number }>();
  const start = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const socket = req.socket;
    // Read now: once the socket is destroyed, its peer may no longer be known.
    const remote = socket.remoteAddress;
    res.once('close', () => {
      const before = accounted.get(socket) ?? { read: 0, written: 0 };
      const now = { read: socket.bytesRead, written: socket.bytesWritten ?? before.written };
      accounted.set(socket, now);
      const facts = factsOf(req);
      record({
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        route: routeOf(req.url),
        cache: facts.cache,
        status: res.headersSent ? res.statusCode : undefined,
        completed: answeredInFull(res, now.written - before.written),
        bytesSent: now.written - before.written,
        bytesReceived: now.read - before.read,
        durationMs: performance.now() - started,
        token: facts.token,
        remote,
      });
    });
  };
  // First, so that the clock starts before larder's own handler runs.
  server.prependListener('request', start);
  // With a checkContinue listener (larder answers 100-continue itself), Node emits that instead of 'request'.
  if (server.listenerCount('checkContinue') > 0) server.prependListener('checkContinue', start);
}

/**
 * Whether the client got the whole answer: it ended normally, or every byte its Content-Length
 * promised was sent. The second case is a race, not a failure: a client that closes its side once
 * it has the promised bytes (`Connection: close`) can do so before the server's file stream has
 * seen the end of the file and ended the response.
 */
function answeredInFull(res: ServerResponse, bytesSent: number): boolean {
  if (res.writableFinished) return true;
  // The header block Node wrote to the socket (not in its typings; what morgan and on-headers read too):
  // writeHead's headers are not kept where getHeader() looks.
  const head = (res as unknown as { _header?: unknown })._header;
  const length = typeof head === 'string' ? /^content-length:\s*(\d+)\r$/im.exec(head)?.[1] : undefined;
  return length !== undefined && bytesSent >= Buffer.byteLength(head as string, 'latin1') + Number(length);
}

/**
 * Counts observed requests in the HTTP metrics. The few label combinations a
 * server meets are bound once as prom-client children, so a request builds no
 * label objects; prom-client still hashes the label set on every update, even
 * through a child (about 4 µs for a request's updates, measured alone).
 */
export class RequestCounter {
  readonly #metrics: LarderMetrics;
  readonly #series = new Map<string, Series>();

  constructor(metrics: LarderMetrics) {
    this.#metrics = metrics;
  }

  count(observed: ObservedRequest): void {
    const method = methodLabel(observed.method);
    const status = observed.status === undefined ? 'aborted' : String(observed.status);
    const series = this.#seriesOf(method, observed.route, observed.cache ?? '', status);
    series.requests.inc();
    series.duration.observe(observed.durationMs / 1000);
    if (observed.bytesSent > 0) series.sent.inc(observed.bytesSent);
    if (observed.bytesReceived > 0) series.received.inc(observed.bytesReceived);
    if (!observed.completed) series.aborted.inc();
    series.lookup?.inc();
  }

  #seriesOf(method: string, route: Route, cache: string, status: string): Series {
    const key = `${method} ${route} ${status} ${cache}`;
    let series = this.#series.get(key);
    if (!series) {
      const m = this.#metrics;
      const lookup =
        route === 'narinfo' && cache !== '' && (method === 'GET' || method === 'HEAD') && (status === '200' || status === '404')
          ? m.narinfoLookups.labels({ cache, result: status === '200' ? 'hit' : 'miss' })
          : undefined;
      series = {
        requests: m.requests.labels({ method, route, cache, status }),
        duration: m.requestDuration.labels({ method, route, cache }),
        sent: m.sentBytes.labels({ route, cache }),
        received: m.receivedBytes.labels({ route, cache }),
        aborted: m.abortedRequests.labels({ route, cache }),
        ...(lookup && { lookup }),
      };
      this.#series.set(key, series);
    }
    return series;
  }
}

interface Series {
  readonly requests: { inc(value?: number): void };
  readonly duration: { observe(value: number): void };
  readonly sent: { inc(value?: number): void };
  readonly received: { inc(value?: number): void };
  readonly aborted: { inc(value?: number): void };
  readonly lookup?: { inc(value?: number): void };
}

/** Writes an observed request's log line: info, warn for a 5xx or an answer cut short. */
export function logRequest(logger: Logger, observed: ObservedRequest): void {
  const level = observed.status === undefined || observed.status >= 500 || !observed.completed ? 'warn' : 'info';
  if (!logger.isLevelEnabled(level)) return;
  logger[level](
    {
      method: observed.method,
      url: observed.url,
      route: observed.route,
      ...(observed.cache !== undefined && { cache: observed.cache }),
      status: observed.status ?? null,
      ...(!observed.completed && { aborted: true }),
      bytesSent: observed.bytesSent,
      bytesReceived: observed.bytesReceived,
      durationMs: Math.round(observed.durationMs * 1000) / 1000,
      ...(observed.token && { token: observed.token.label, tokenId: observed.token.id }),
      ...(observed.remote && { remote: observed.remote }),
    },
    `${observed.method} ${observed.url} ${observed.status ?? 'aborted'}`,
  );
}
