// An HTTP proxy in front of a real upstream cache that counts what passes and
// misbehaves on demand, as real upstreams and links do: hang without
// answering, refuse connections, trickle a body, or corrupt NAR bytes.

import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * forward: pass through; hang: accept, never answer; corrupt-nar: flip a byte of every NAR body;
 * tamper-narinfo: add one to every narinfo's NarSize, which its signature covers.
 */
export type GateMode = 'forward' | 'hang' | 'corrupt-nar' | 'tamper-narinfo';

export class HttpGate {
  readonly #target: URL;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port = 0;
  mode: GateMode = 'forward';
  /** Delay between body chunks of NAR responses, to make a download last. */
  narChunkDelayMs = 0;
  /** Request paths seen, in order. */
  readonly requests: string[] = [];

  private constructor(target: string) {
    this.#target = new URL(target);
  }

  /** A gate to `target` (an origin such as http://127.0.0.1:1234). */
  static async start(target: string): Promise<HttpGate> {
    const gate = new HttpGate(target);
    await gate.open();
    return gate;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  count(pattern: RegExp): number {
    return this.requests.filter((path) => pattern.test(path)).length;
  }

  /** Stops listening and drops every connection: connecting is refused. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  /** Listens again, on the same port as before if there was one. */
  async open(): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests.push(req.url ?? '');
    if (this.mode === 'hang') return; // the socket stays open, silent
    const isNar = /\/nar\//.test(req.url ?? '');
    const upstream = request(new URL(req.url ?? '/', this.#target), { method: req.method, headers: req.headers });
    req.pipe(upstream);
    upstream.on('error', () => res.destroy());
    const [answer] = (await once(upstream, 'response')) as [IncomingMessage];
    if (this.mode === 'tamper-narinfo' && req.url?.endsWith('.narinfo') && answer.statusCode === 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of answer as AsyncIterable<Buffer>) chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('utf8').replace(/^NarSize: (\d+)$/m, (_, n: string) => `NarSize: ${Number(n) + 1}`);
      res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo', 'Content-Length': Buffer.byteLength(text) }).end(text);
      return;
    }
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    let offset = 0;
    try {
      for await (const chunk of answer as AsyncIterable<Buffer>) {
        if (isNar && this.mode === 'corrupt-nar' && offset <= 200 && offset + chunk.length > 200) {
          chunk[200 - offset]! ^= 0xff;
        }
        offset += chunk.length;
        if (isNar && this.narChunkDelayMs > 0) {
          // Small pieces, slowly: the download lasts while other clients arrive.
          for (let i = 0; i < chunk.length; i += 16 * 1024) {
            if (!res.write(chunk.subarray(i, i + 16 * 1024))) await once(res, 'drain');
            await sleep(this.narChunkDelayMs);
          }
        } else if (!res.write(chunk)) {
          await once(res, 'drain');
        }
      }
      res.end();
    } catch {
      res.destroy();
    }
  }
}
