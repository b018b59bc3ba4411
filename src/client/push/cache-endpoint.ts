// The push client's view of a larder cache over HTTP: the batched `missing`
// query, and the same PUT endpoints stock `nix copy` uses, with a Bearer
// token. Transient failures (5xx, 408, 429, dropped connections) are retried
// with exponential backoff; a 4xx is the server's verdict and is final.

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CacheLocation {
  /** Base URL of the server, e.g. http://host:8080 (or with a path prefix behind a proxy). */
  readonly server: string;
  readonly cache: string;
  /** `${server}/${cache}` */
  readonly url: string;
}

export function parseCacheUrl(text: string): CacheLocation {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`'${text}' is not a URL; expected http(s)://host[:port]/<cache>`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`'${text}': expected an http or https URL`);
  const parts = url.pathname.split('/').filter(Boolean);
  const cache = parts.pop();
  if (!cache) throw new Error(`'${text}' names no cache; expected http(s)://host[:port]/<cache>`);
  const server = `${url.origin}${parts.length ? '/' + parts.join('/') : ''}`;
  return { server, cache, url: `${server}/${cache}` };
}

/** A refusal by the server (4xx): retrying would not help. */
export class ServerRefusal extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ServerRefusal';
    this.status = status;
  }
}

/** The server could not be reached, or kept failing (5xx), through every attempt. */
export class ServerUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServerUnavailable';
  }
}

/** A failure worth another attempt; its message is the reason alone. */
class TransientFailure extends Error {}

const RETRIED_STATUS = (status: number) => (status >= 500 && ![501, 505, 511].includes(status)) || status === 408 || status === 429;

export interface EndpointOptions {
  readonly token: string | undefined;
  /** Connections kept open to the server. */
  readonly connections: number;
  readonly attempts: number;
  /** First backoff delay; doubled at each attempt. */
  readonly backoffMs: number;
  /**
   * A request whose connection moves no byte either way for this long is dropped and retried
   * (a server or proxy that stopped reading must not hold a push forever). Default 120 s.
   */
  readonly stallTimeoutMs?: number;
}

const STALL_TIMEOUT_MS = 120_000;

interface Answer {
  readonly status: number;
  readonly body: string;
}

export class CacheEndpoint {
  readonly location: CacheLocation;
  private readonly options: EndpointOptions;
  private readonly agent: HttpAgent;

  constructor(location: CacheLocation, options: EndpointOptions) {
    this.location = location;
    this.options = options;
    const agentOptions = { keepAlive: true, maxSockets: options.connections };
    this.agent = location.server.startsWith('https:') ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: string, url: string, body?: { size: number; open: () => Readable; type: string }): Promise<Answer> {
    const target = new URL(url);
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string | number> = {};
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token}`;
    if (body) {
      headers['Content-Length'] = body.size;
      headers['Content-Type'] = body.type;
    }
    return new Promise((resolve, reject) => {
      const req = request(target, { method, headers, agent: this.agent }, (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text.trim() }));
        res.on('error', (error) => reject(new TransientFailure(error.message)));
      });
      req.on('error', (error) => reject(new TransientFailure((error as NodeJS.ErrnoException).code ?? error.message)));
      const stallMs = this.options.stallTimeoutMs ?? STALL_TIMEOUT_MS;
      req.setTimeout(stallMs, () => req.destroy(new Error(`no progress for ${stallMs / 1000} s`)));
      if (!body) return void req.end();
      const stream = body.open();
      stream.on('error', (error) => req.destroy(error));
      stream.pipe(req);
    });
  }

  /** Sends with retries; resolves with the final answer when it is 2xx or 404 (for HEAD). */
  private async call(method: string, url: string, body?: { size: number; open: () => Readable; type: string }): Promise<Answer> {
    let delay = this.options.backoffMs;
    for (let attempt = 1; ; attempt++) {
      let failure: string;
      try {
        const answer = await this.send(method, url, body);
        if (answer.status < 300 || (method === 'HEAD' && answer.status === 404)) return answer;
        if (!RETRIED_STATUS(answer.status)) {
          throw new ServerRefusal(answer.status, `${method} ${url}: ${answer.status} ${answer.body || 'refused'}`);
        }
        failure = `${answer.status} ${answer.body}`.trim();
      } catch (error) {
        if (!(error instanceof TransientFailure)) throw error;
        failure = error.message;
      }
      if (attempt >= this.options.attempts) throw new ServerUnavailable(`${method} ${url}: ${failure} (gave up after ${attempt} attempts)`);
      await sleep(delay);
      delay *= 2;
    }
  }

  /** Which of these store paths the cache lacks, in one round trip per few thousand paths. */
  async missing(paths: readonly string[]): Promise<Set<string>> {
    const missing = new Set<string>();
    for (let i = 0; i < paths.length; i += 5000) {
      const json = JSON.stringify({ paths: paths.slice(i, i + 5000) });
      const buffer = Buffer.from(json);
      const answer = await this.call('POST', `${this.location.server}/api/v1/caches/${this.location.cache}/missing`, {
        size: buffer.length,
        open: () => Readable.from([buffer]),
        type: 'application/json',
      });
      for (const path of (JSON.parse(answer.body) as { missing: string[] }).missing) missing.add(path);
    }
    return missing;
  }

  /** The cache's settings as the API shows them. */
  async describe(): Promise<Record<string, unknown>> {
    const answer = await this.call('GET', `${this.location.server}/api/v1/caches/${this.location.cache}`);
    return JSON.parse(answer.body) as Record<string, unknown>;
  }

  /** Pins a store path's closure under a name, replacing an earlier pin of that name. */
  async pin(name: string, storePath: string): Promise<void> {
    const body = Buffer.from(JSON.stringify({ storePath }));
    await this.call('PUT', `${this.location.server}/api/v1/caches/${this.location.cache}/pins/${encodeURIComponent(name)}`, {
      size: body.length,
      open: () => Readable.from([body]),
      type: 'application/json',
    });
  }

  async hasFile(path: string): Promise<boolean> {
    return (await this.call('HEAD', `${this.location.url}/${path}`)).status < 300;
  }

  async putFile(path: string, size: number, open: () => Readable, type: string): Promise<void> {
    await this.call('PUT', `${this.location.url}/${path}`, { size, open, type });
  }
}
