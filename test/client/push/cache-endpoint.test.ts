// CacheEndpoint against a real HTTP server that misbehaves on purpose: a
// stalled upload (the server stops reading and never answers) is dropped and
// sent again; a 503 is retried; a 4xx is final and says why; a server that
// keeps failing or is not there is given up on with the last reason.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { CacheEndpoint, parseCacheUrl, ServerRefusal, ServerUnavailable } from '../../../src/client/push/cache-endpoint.ts';
import { unreachableUrl } from '../../helpers/unreachable-url.ts';

async function endpointFor(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse, attempt: number) => void): Promise<{ endpoint: CacheEndpoint; attempts: () => number }> {
  let attempts = 0;
  const server = createServer((req, res) => handler(req, res, ++attempts));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = new CacheEndpoint(parseCacheUrl(`http://127.0.0.1:${(server.address() as AddressInfo).port}/main`), {
    token: 'secret',
    connections: 2,
    attempts: 3,
    backoffMs: 10,
    stallTimeoutMs: 300,
  });
  t.after(() => {
    endpoint.close();
    server.closeAllConnections();
    server.close();
  });
  return { endpoint, attempts: () => attempts };
}

const body = Buffer.alloc(8 * 1024 * 1024, 7); // more than the sockets' buffers hold
const open = () => Readable.from([body]);

test('an upload the server stops reading is dropped after the stall timeout and sent again', async (t) => {
  const { endpoint, attempts } = await endpointFor(t, (req, res, attempt) => {
    if (attempt === 1) return req.pause(); // reads nothing more, answers nothing
    let received = 0;
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => res.writeHead(received === body.length ? 201 : 400).end());
  });
  const started = performance.now();
  await endpoint.putFile('nar/x.nar', body.length, open, 'application/x-nix-nar');
  assert.equal(attempts(), 2);
  assert.ok(performance.now() - started < 10_000, 'not held for long');
});

test('a 503 is retried; a 4xx is final and carries the server’s reason', async (t) => {
  const { endpoint, attempts } = await endpointFor(t, (req, res, attempt) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/main/refused.narinfo') return void res.writeHead(400).end('StorePath: not a store path\n');
      res.writeHead(attempt === 1 ? 503 : 201).end();
    });
  });
  await endpoint.putFile('ok.narinfo', body.length, open, 'text/x-nix-narinfo');
  assert.equal(attempts(), 2);
  await assert.rejects(endpoint.putFile('refused.narinfo', 3, () => Readable.from([Buffer.from('abc')]), 'text/x-nix-narinfo'), (error: unknown) => {
    assert.ok(error instanceof ServerRefusal);
    assert.equal(error.status, 400);
    assert.match(error.message, /PUT .*refused\.narinfo: 400 StorePath: not a store path/);
    return true;
  });
  assert.equal(attempts(), 3, 'no retry of a refusal');
});

test('a server that keeps failing, or is not there, is given up on after the attempts, with the last reason', async (t) => {
  const { endpoint, attempts } = await endpointFor(t, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(503).end('index unavailable'));
  });
  await assert.rejects(endpoint.putFile('x.narinfo', 3, () => Readable.from([Buffer.from('abc')]), 'text/x-nix-narinfo'), (error: unknown) => {
    assert.ok(error instanceof ServerUnavailable);
    assert.match(error.message, /^PUT http:\/\/127\.0\.0\.1:\d+\/main\/x\.narinfo: 503 index unavailable \(gave up after 3 attempts\)$/);
    return true;
  });
  assert.equal(attempts(), 3);

  const nowhere = new CacheEndpoint(parseCacheUrl(`${await unreachableUrl()}/main`), { token: undefined, connections: 1, attempts: 2, backoffMs: 10 });
  t.after(() => nowhere.close());
  await assert.rejects(nowhere.describe(), (error: unknown) => {
    assert.ok(error instanceof ServerUnavailable);
    assert.match(error.message, /^GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/caches\/main: ECONNREFUSED \(gave up after 2 attempts\)$/);
    return true;
  });
});
