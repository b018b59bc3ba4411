// A TCP proxy on 127.0.0.1 between a client and a server, to make a server
// vanish, come back, or go silent on demand: what a network or a database
// failing looks like from a client.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export type ProxyMode = 'forward' | 'blackhole' | 'stall';

export class TcpProxy {
  readonly #targetPort: number;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port = 0;
  /** forward: pass bytes; blackhole: accept connections, never reach the server; stall: pass no bytes either way. */
  mode: ProxyMode = 'forward';

  private constructor(targetPort: number) {
    this.#targetPort = targetPort;
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort);
    await proxy.restore();
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  /** Drops every connection and stops listening: connecting is refused. */
  async cut(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  /** Listens again, on the same port as before. */
  async restore(): Promise<void> {
    if (this.#server) return;
    const server = createServer((client) => this.#accept(client));
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (typeof address === 'object' && address) this.#port = address.port;
    this.#server = server;
  }

  close(): Promise<void> {
    return this.cut();
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.#sockets.delete(socket));
  }

  #accept(client: Socket): void {
    this.#track(client);
    if (this.mode === 'blackhole') return;
    const upstream = connect(this.#targetPort, '127.0.0.1');
    this.#track(upstream);
    client.on('data', (chunk) => {
      if (this.mode === 'forward') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (this.mode === 'forward') client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }
}

/** A port on 127.0.0.1 that nothing listens on (just now). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}
