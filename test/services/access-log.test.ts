// Access times noted in memory, written in batches: one UPDATE per cache, kind and second.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CacheIndex } from '../../src/index/cache-index.ts';
import { AccessLog } from '../../src/services/access-log.ts';

interface Call {
  kind: 'path' | 'nar';
  cache: string;
  keys: string[];
  at: number;
}

function fakeIndex(calls: Call[], fail: { next: boolean } = { next: false }): CacheIndex {
  const record = (kind: Call['kind']) => async (cache: string, keys: readonly string[], at: number) => {
    if (fail.next) {
      fail.next = false;
      throw new Error('index down');
    }
    calls.push({ kind, cache, keys: [...keys].sort(), at });
  };
  return { touchPaths: record('path'), touchPathsByNar: record('nar') } as unknown as CacheIndex;
}

test('notes are grouped per cache, kind and second, the latest access of each key winning', async () => {
  const calls: Call[] = [];
  let now = 10_000;
  const log = new AccessLog(fakeIndex(calls), { now: () => now });
  log.path('main', 'a');
  log.path('main', 'b');
  now = 10_400;
  log.path('main', 'a');
  log.nar('main', 'f');
  log.path('other', 'a');
  now = 12_700;
  log.path('main', 'c');
  assert.equal(log.pending, 5);
  await log.flush();
  assert.equal(log.pending, 0);
  assert.deepEqual(
    calls.sort((x, y) => x.at - y.at || x.cache.localeCompare(y.cache) || x.kind.localeCompare(y.kind)),
    [
      { kind: 'nar', cache: 'main', keys: ['f'], at: 10_000 },
      { kind: 'path', cache: 'main', keys: ['a', 'b'], at: 10_000 },
      { kind: 'path', cache: 'other', keys: ['a'], at: 10_000 },
      { kind: 'path', cache: 'main', keys: ['c'], at: 12_000 },
    ],
  );
  await log.flush();
  assert.equal(calls.length, 4, 'nothing left to write');
});

test('a failed flush keeps its notes for the next one; a newer note wins', async () => {
  const calls: Call[] = [];
  const fail = { next: true };
  let now = 5_000;
  const log = new AccessLog(fakeIndex(calls, fail), { now: () => now });
  log.path('main', 'a');
  await assert.rejects(log.flush(), /index down/);
  assert.equal(log.pending, 1);
  now = 9_000;
  log.path('main', 'a');
  await log.flush();
  assert.deepEqual(calls, [{ kind: 'path', cache: 'main', keys: ['a'], at: 9_000 }]);
});

test('too many notes start a flush early; stop writes what is left', async () => {
  const calls: Call[] = [];
  const log = new AccessLog(fakeIndex(calls), { now: () => 1000, maxEntries: 3 });
  log.path('main', 'a');
  log.path('main', 'b');
  log.path('main', 'c');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls.map((c) => c.keys), [['a', 'b', 'c']]);
  log.start(60_000);
  log.path('main', 'd');
  await log.stop();
  assert.deepEqual(calls.map((c) => c.keys), [['a', 'b', 'c'], ['d']]);
});
