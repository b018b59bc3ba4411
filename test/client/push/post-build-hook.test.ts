// The post-build hook as Nix really runs it, then `larder watch` draining the queue.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { larder } from '../../helpers/larder-cli.ts';
import { startLarder } from '../../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix } from '../../helpers/nix-env.ts';

const hook = fileURLToPath(new URL('../../../contrib/post-build-hook.sh', import.meta.url));
const entries = async (dir: string) => (await readdir(dir)).filter((name) => !name.startsWith('.'));

test('builds queue their outputs through the hook; larder watch pushes them', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const queue = await mkdtemp(join(tmpdir(), 'larder-queue-'));
  t.after(() => rm(queue, { recursive: true, force: true }));
  // Nix runs the hook with its own environment, so the queue directory reaches it.
  const nix = await nixEnv(t, [`post-build-hook = ${hook}`], { LARDER_QUEUE_DIR: queue });
  const built = await nix.buildClosure(nix.chain(3));
  assert.equal((await entries(queue)).length, 3, 'one queue entry per build');

  const [extra] = await (await nixEnv(t)).buildClosure([{ name: 'queued-by-hand' }]);
  await larder(['queue', '--queue-dir', queue, extra!.out], nix.env);
  await larder(['watch', '--once', server.cacheUrl], { ...nix.env, LARDER_TOKEN: server.writeToken });
  assert.deepEqual(await entries(queue), [], 'the queue is drained');
  for (const path of [extra!.out, ...built.map((b) => b.out)]) {
    const res = await fetch(`${server.cacheUrl}/${path.slice(11, 43)}.narinfo`, { headers: { Authorization: `Bearer ${server.writeToken}` } });
    assert.equal(res.status, 200, `${path} should be in the cache`);
  }
});

test('a failed drain keeps the queue for the next try', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const queue = await mkdtemp(join(tmpdir(), 'larder-queue-'));
  t.after(() => rm(queue, { recursive: true, force: true }));
  const nix = await nixEnv(t);
  const [one] = await nix.buildClosure([{ name: 'kept' }]);
  await larder(['queue', '--queue-dir', queue, one!.out], nix.env);
  await assert.rejects(larder(['watch', '--once', '--queue-dir', queue, server.cacheUrl], { ...nix.env, LARDER_TOKEN: 'ldr_wrong' }));
  assert.equal((await entries(queue)).length, 1);
  await larder(['watch', '--once', '--queue-dir', queue, server.cacheUrl], { ...nix.env, LARDER_TOKEN: server.writeToken });
  assert.equal((await entries(queue)).length, 0);
});
