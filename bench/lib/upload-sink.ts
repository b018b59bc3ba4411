// The floor under larder push: a bare node:http server that speaks just
// enough of larder's API for `larder push` to run against it (every path is
// missing, no NAR is there yet, no upstreams) and reads every upload to the end
// without checking, decompressing or storing any of it. A push into it costs the
// client everything a real push does, and the server next to nothing, so its
// time says how fast larder push can be on this machine whatever the server does.

import { spawn } from 'node:child_process';
import { freePort } from './nginx.ts';
import { ScriptServer } from './script-server.ts';

const SERVER = `
const http = require('node:http');
const port = Number(process.argv[1]);
let narinfos = 0, narBytes = 0;
const send = (res, status, body = '') => res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
http.createServer({ requestTimeout: 0 }, (req, res) => {
  const url = req.url;
  if (url === '/sink/stats') return send(res, 200, JSON.stringify({ narinfos, narBytes }));
  if (url === '/sink/reset') { narinfos = 0; narBytes = 0; return send(res, 204); }
  if (req.method === 'POST' && url.endsWith('/missing')) {
    let body = '';
    req.setEncoding('utf8').on('data', (text) => (body += text));
    return req.on('end', () => send(res, 200, JSON.stringify({ missing: JSON.parse(body).paths })));
  }
  if (req.method === 'GET' && url.startsWith('/api/v1/caches/')) return send(res, 200, '{"upstreams":[]}');
  if (req.method === 'HEAD') return send(res, 404);
  let bytes = 0;
  req.on('data', (chunk) => (bytes += chunk.length));
  req.on('end', () => {
    if (url.endsWith('.narinfo')) narinfos++;
    else narBytes += bytes;
    send(res, 201);
  });
}).listen(port, '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

export interface SinkStats {
  /** Narinfo uploads received. */
  readonly narinfos: number;
  /** Bytes of NAR uploads received. */
  readonly narBytes: number;
}

export class UploadSink extends ScriptServer {
  static async start(): Promise<UploadSink> {
    const port = await freePort();
    const child = spawn(process.execPath, ['-e', SERVER, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the upload sink exited with ${code}: ${stderr}`)));
    });
    return new UploadSink(`http://127.0.0.1:${port}`, child);
  }

  /** What arrived since the last reset, and a fresh count from now on. */
  async takeStats(): Promise<SinkStats> {
    const stats = (await (await fetch(`${this.url}/sink/stats`)).json()) as SinkStats;
    await (await fetch(`${this.url}/sink/reset`, { method: 'POST' })).arrayBuffer();
    return stats;
  }
}
