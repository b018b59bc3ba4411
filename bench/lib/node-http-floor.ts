// The floor under any narinfo server written on node:http: a bare node:http
// server (as many cluster workers as larder gets) that answers each path from
// a map held in memory, with no auth, no index lookup, no logging and no
// metrics. Whatever larder does per request comes on top of this, so its
// requests per second against nginx's say how far node:http itself can go on
// this machine.

import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './nginx.ts';
import { ScriptServer } from './script-server.ts';

const SERVER = `
const cluster = require('node:cluster');
const http = require('node:http');
const { readFileSync } = require('node:fs');
const [bodiesFile, port, workers] = process.argv.slice(1);
if (cluster.isPrimary) {
  for (let i = 0; i < Number(workers); i++) cluster.fork();
  cluster.on('exit', () => process.exit(1));
} else {
  const bodies = new Map(Object.entries(JSON.parse(readFileSync(bodiesFile, 'utf8'))).map(([p, b]) => [p, Buffer.from(b)]));
  const missing = Buffer.from('not found\\n');
  const server = http.createServer({ keepAliveTimeout: 65000, requestTimeout: 0 }, (req, res) => {
    const body = bodies.get(req.url);
    if (body) res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo', 'Content-Length': body.length }).end(body);
    else res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': missing.length }).end(missing);
  });
  server.listen(Number(port), '127.0.0.1');
}
`;

export class NodeHttpFloor extends ScriptServer {
  /** Serves `bodies` (request path → body) on 127.0.0.1 with `workers` cluster workers. */
  static async start(workDir: string, bodies: ReadonlyMap<string, string>, workers: number): Promise<NodeHttpFloor> {
    const bodiesFile = join(workDir, 'node-http-floor-bodies.json');
    await writeFile(bodiesFile, JSON.stringify(Object.fromEntries(bodies)));
    const port = await freePort();
    const child = spawn(process.execPath, ['-e', SERVER, bodiesFile, String(port), String(workers)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    // Ready once a worker answers (the cluster primary shares one listening socket).
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const poll = setInterval(() => {
        fetch(`http://127.0.0.1:${port}/`).then(
          async (res) => {
            await res.arrayBuffer();
            clearInterval(poll);
            resolve();
          },
          () => {
            if (Date.now() < deadline) return;
            clearInterval(poll);
            reject(new Error(`the node:http floor server did not answer within 10 s: ${stderr}`));
          },
        );
      }, 50);
      child.once('exit', (code) => {
        clearInterval(poll);
        reject(new Error(`the node:http floor server exited with ${code}: ${stderr}`));
      });
    });
    return new NodeHttpFloor(`http://127.0.0.1:${port}`, child);
  }
}
