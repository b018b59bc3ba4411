// A long admin request (garbage collection of a large cache) answers 200 at once, keeps the
// connection busy with blank lines, and says in the body how it ended; a quick one keeps its status.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, ApiError } from '../../src/client/api-client.ts';
import { Rejection } from '../../src/services/rejection.ts';
import { sendJsonWhenDone, sendJson } from '../../src/server/admin-api.ts';

async function serve(t: TestContext, work: () => Promise<unknown>): Promise<string> {
  const server: Server = createServer((_req, res) => {
    sendJsonWhenDone(res, work(), 50).catch((error: unknown) => sendJson(res, 409, { error: (error as Error).message }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('a quick answer is plain JSON with its status; a quick failure is the caller’s to answer', async (t) => {
  const quick = await serve(t, async () => ({ done: true }));
  const res = await fetch(quick);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { done: true });
  const refused = await serve(t, async () => {
    throw new Rejection('conflict', 'busy');
  });
  assert.equal((await fetch(refused)).status, 409);
});

test('a slow answer: 200 at once, blank lines meanwhile, then the JSON or the failure in the body', async (t) => {
  const slow = await serve(t, async () => {
    await sleep(250);
    return { paths: 3 };
  });
  const res = await fetch(slow);
  const text = await res.text();
  assert.equal(res.status, 200);
  assert.match(text, /^\n{2,}\{"paths":3\}$/);
  assert.deepEqual(JSON.parse(text), { paths: 3 });

  const failing = await serve(t, async () => {
    await sleep(150);
    throw new Rejection('conflict', 'garbage collection of cache main is running already');
  });
  const client = new ApiClient(failing, 'token');
  await assert.rejects(client.gc('main'), (error) => error instanceof ApiError && error.status === 409 && /running already/.test(error.message));
});
