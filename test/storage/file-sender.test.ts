// sendFile over a real HTTP connection: every byte of the file or of a range
// arrives in order; a client that leaves mid-way ends the send with
// DestinationClosedError (no hang, no unhandled rejection); a file shorter than
// promised breaks the response instead of ending it as if complete.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DestinationClosedError, sendFile } from '../../src/storage/file-sender.ts';

const MiB = 1024 * 1024;

/** A server whose handler is given; its URL. */
async function serve(t: TestContext, handler: (res: ServerResponse) => void): Promise<string> {
  const server = createServer((_req, res) => handler(res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

async function fileOf(t: TestContext, bytes: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-send-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'blob');
  await writeFile(path, bytes);
  return path;
}

test('the whole file and ranges arrive byte for byte, several sends at once', async (t) => {
  const bytes = randomBytes(3 * MiB + 12345);
  const path = await fileOf(t, bytes);
  const cases = [
    [0, bytes.length],
    [1, 2],
    [100, 256 * 1024 + 100], // exactly one chunk, unaligned
    [777, bytes.length - 3],
    [5, 5], // nothing
  ] as const;
  let next = 0;
  const results: Promise<void>[] = [];
  const url = await serve(t, (res) => {
    const [start, end] = cases[next++ % cases.length]!;
    res.writeHead(200, { 'Content-Length': end - start });
    results.push(
      open(path, 'r').then(async (handle) => {
        try {
          await sendFile(handle, start, end, res);
        } finally {
          await handle.close();
        }
      }),
    );
  });
  for (let round = 0; round < 2; round++) {
    const bodies = await Promise.all(cases.map(async () => Buffer.from(await (await fetch(url)).arrayBuffer())));
    // Requests may reach the server in any order: match each body to its case by length and content.
    for (const [start, end] of cases) {
      const expected = bytes.subarray(start, end);
      assert.ok(bodies.some((body) => body.equals(expected)), `bytes ${start}-${end} arrived whole`);
    }
  }
  await Promise.all(results);
});

test('a client that leaves mid-way ends the send with DestinationClosedError', async (t) => {
  const bytes = randomBytes(64 * MiB);
  const path = await fileOf(t, bytes);
  const handle = await open(path, 'r');
  t.after(() => handle.close());
  let sent!: Promise<void>;
  const url = await serve(t, (res) => {
    res.writeHead(200, { 'Content-Length': bytes.length });
    sent = sendFile(handle, 0, bytes.length, res);
    sent.catch(() => {}); // asserted below

  });
  // A client that reads a little, then stops reading, then goes.
  await new Promise<void>((resolve, reject) => {
    const req = request(url, (res) => {
      res.once('data', () => {
        res.pause();
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50);
      });
    });
    req.on('error', (error) => ((error as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(error)));
    req.end();
  });
  await assert.rejects(sent, DestinationClosedError);
});

test('a file shorter than promised breaks the response rather than ending it', async (t) => {
  const path = await fileOf(t, randomBytes(1000));
  const handle = await open(path, 'r');
  t.after(() => handle.close());
  let sent!: Promise<void>;
  const url = await serve(t, (res) => {
    res.writeHead(200, { 'Content-Length': 5000 });
    sent = sendFile(handle, 0, 5000, res);
    sent.catch(() => {}); // asserted below, once the client has seen the response

  });
  await assert.rejects(async () => {
    const res = await fetch(url);
    await res.arrayBuffer();
  }, 'the client sees a broken body');
  await assert.rejects(sent, /the file ended at byte 1000 of 5000/);
});
