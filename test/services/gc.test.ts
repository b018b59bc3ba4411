// Garbage collection runs against a real SQLite index and directory store, with
// changes injected between the plan and the deletion (a push, a pin, an access,
// a NAR uploaded again): what changed since the plan is spared, never broken.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { CacheIndex, PathRecord } from '../../src/index/cache-index.ts';
import { openSqliteIndex, type SqlIndex } from '../../src/index/sql-index.ts';
import { deletePath, runGc } from '../../src/services/gc.ts';
import { assembleLarder, type Larder } from '../../src/services/larder.ts';
import { FilesystemStore } from '../../src/storage/filesystem-store.ts';
import { narInfoKey, narKey } from '../../src/storage/layout.ts';
import { cacheRecord, hashPart, narRecord, pathRecord } from '../index/index-suite.ts';

const NOW = 1_800_000_000_000;
const DAY = 86_400_000;

type Hook = (index: CacheIndex) => Promise<void>;

interface Bench {
  readonly larder: Larder;
  readonly index: SqlIndex;
  readonly store: FilesystemStore;
  /** Runs once, before the index method of that name is next called. */
  readonly before: Partial<Record<keyof CacheIndex, Hook>>;
}

async function bench(t: TestContext): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), 'larder-gc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const index = await openSqliteIndex(join(dir, 'index.sqlite'));
  const store = await FilesystemStore.open(join(dir, 'store'));
  const before: Bench['before'] = {};
  // The index as garbage collection sees it, with a hook before its deletions.
  const hooked = new Proxy(index, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const hook = before[name as keyof CacheIndex];
        if (hook) {
          delete before[name as keyof CacheIndex];
          await hook(index);
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const larder = assembleLarder(hooked, store, {
    storeDir: '/nix/store',
    keyNamePrefix: 'test-',
    maxNarSize: 2 ** 30,
    maxSmallBodySize: 2 ** 20,
    now: () => NOW,
    gc: { narinfoVisibilityMs: 0 },
  });
  t.after(() => larder.close());
  await index.createCache(cacheRecord('main', { retentionMs: 30 * DAY }));
  return { larder, index, store, before };
}

/** A path with its NAR record and files, created and last used at `at`. */
async function add(b: Bench, seed: string, refs: string[], at: number): Promise<PathRecord> {
  const path = { ...pathRecord('main', seed, refs.map(hashPart)), createdAt: at };
  const nar = { ...narRecord('main', seed, { createdAt: at, fileSize: 1000 }), fileHash: path.fileHash, url: `nar/${path.fileHash}.nar` };
  await b.index.putNar(nar);
  await b.store.put(narKey('main', nar.url), 'nar bytes');
  await b.store.put(narInfoKey('main', path.hashPart), path.narinfo);
  assert.equal(await b.index.putPath(path, { nar: true, references: path.references }), true);
  return path;
}

async function files(b: Bench): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of b.store.list('main')) keys.push(key);
  return keys.sort();
}

const OLD = NOW - 60 * DAY;
const RECENT = NOW - DAY;

test('old paths go with their files; what recent paths refer to stays; a dry run changes nothing', async (t) => {
  const b = await bench(t);
  for (const [seed, refs, at] of [
    ['c', [], OLD],
    ['b', ['c'], OLD],
    ['a', ['b'], OLD],
    ['d', ['b'], RECENT],
    ['e', [], OLD],
  ] as const) {
    await add(b, seed, [...refs], at);
  }
  const before = await files(b);
  const dry = await runGc(b.larder, 'main', { dryRun: true, list: true });
  assert.deepEqual(await files(b), before);
  assert.deepEqual(dry.freed.list, [`/nix/store/${hashPart('a')}-a`, `/nix/store/${hashPart('e')}-e`].sort());
  assert.equal(dry.kept.recentRoots, 1);
  assert.equal(dry.kept.referenced, 2);

  const real = await runGc(b.larder, 'main', { list: true });
  assert.deepEqual(real.deleted?.list, dry.freed.list);
  assert.equal(real.deleted?.digest, dry.freed.digest);
  assert.equal(real.deleted?.nars, 2);
  assert.equal(real.deleted?.bytes, 2000);
  const left = await files(b);
  for (const seed of ['a', 'e']) {
    assert.ok(!left.includes(narInfoKey('main', hashPart(seed))), `${seed}.narinfo`);
    assert.ok(!left.includes(`main/nar/${pathRecord('main', seed).fileHash}.nar`), `${seed}'s NAR`);
  }
  assert.equal(left.length, before.length - 4);
  assert.equal((await b.index.getCache('main'))?.generation, 1);
});

test('a path pushed after the plan that refers to a doomed path keeps it, and its NAR', async (t) => {
  const b = await bench(t);
  const old = await add(b, 'old', [], OLD);
  await add(b, 'older', ['old'], OLD);
  b.before.deletePaths = async (index) => {
    const fresh = { ...pathRecord('main', 'fresh', [old.hashPart]), createdAt: NOW };
    await index.putNar({ ...narRecord('main', 'fresh'), fileHash: fresh.fileHash, createdAt: NOW });
    assert.equal(await index.putPath(fresh, { nar: true, references: [old.hashPart] }), true);
  };
  const report = await runGc(b.larder, 'main', { list: true });
  assert.deepEqual(report.freed.list, [`/nix/store/${hashPart('old')}-old`, `/nix/store/${hashPart('older')}-older`].sort(), 'the plan');
  assert.deepEqual(report.deleted?.list, [`/nix/store/${hashPart('older')}-older`], 'what happened');
  assert.equal(report.deleted?.spared.referenced, 1);
  assert.ok(await b.index.getPath('main', old.hashPart));
  assert.ok(await b.index.getNar('main', old.fileHash));
  assert.ok((await files(b)).includes(`main/nar/${old.fileHash}.nar`));
});

test('a pin set or an access noted after the plan spares the path and its closure', async (t) => {
  const b = await bench(t);
  await add(b, 'base', [], OLD);
  await add(b, 'pinned', ['base'], OLD);
  await add(b, 'used', [], OLD);
  await add(b, 'gone', [], OLD);
  // After planning (the report looks up names), before deleting.
  b.before.pathBases = async (index) => {
    await index.putPin('main', 'late', hashPart('pinned'), NOW);
    // Noted in memory only: the run writes the notes before each batch.
    b.larder.accesses.path('main', hashPart('used'));
  };
  const report = await runGc(b.larder, 'main', { list: true });
  assert.equal(report.freed.paths, 4);
  assert.deepEqual(report.deleted?.list, [`/nix/store/${hashPart('gone')}-gone`]);
  assert.deepEqual(report.deleted?.spared, { absent: 0, accessed: 1, pinned: 1, referenced: 1 });
});

test('a NAR uploaded again after its path was deleted is left for the upload', async (t) => {
  const b = await bench(t);
  const path = await add(b, 'p', [], OLD);
  b.before.claimNars = async (index) => {
    assert.equal(await index.getPath('main', path.hashPart), undefined, 'the path is gone already');
    assert.ok(await index.touchNar('main', path.fileHash, NOW + 1), 'the upload finds the NAR and renews it');
  };
  const report = await runGc(b.larder, 'main');
  assert.equal(report.deleted?.paths, 1);
  assert.equal(report.deleted?.nars, 0);
  assert.ok(await b.index.getNar('main', path.fileHash));
  assert.ok((await files(b)).includes(`main/nar/${path.fileHash}.nar`));
});

test('a claim left by a deleter that died is finished by a later run; orphans wait out the grace period', async (t) => {
  const b = await bench(t);
  const stale = { ...narRecord('main', 'stale'), createdAt: OLD };
  const fresh = { ...narRecord('main', 'fresh'), createdAt: NOW - 60_000 };
  for (const nar of [stale, fresh]) {
    await b.index.putNar(nar);
    await b.store.put(narKey('main', nar.url), 'x');
  }
  assert.equal((await b.index.claimNars('main', [stale.fileHash], { createdBefore: NOW, staleClaimBefore: 0, at: NOW - 3_600_000 })).length, 1);
  const report = await runGc(b.larder, 'main');
  assert.equal(report.orphans.nars, 1);
  assert.deepEqual(await b.index.presentNars('main', [stale.fileHash, fresh.fileHash]), new Set([fresh.fileHash]));
  assert.deepEqual(await files(b), [narKey('main', fresh.url)]);
});

test('a run holds the cache: a second one at the same time is refused', async (t) => {
  const b = await bench(t);
  await add(b, 'p', [], OLD);
  let second: Promise<unknown> | undefined;
  b.before.deletePaths = async () => {
    second = runGc(b.larder, 'main');
    await assert.rejects(second, /garbage collection of cache 'main' is running already/);
  };
  await runGc(b.larder, 'main');
  assert.ok(second);
  const dry = await runGc(b.larder, 'main', { dryRun: true });
  assert.equal(dry.freed.paths, 0);
});

test('path delete: refused while referred to or pinned; with dependents, all or nothing', async (t) => {
  const b = await bench(t);
  await add(b, 'lib', [], RECENT);
  await add(b, 'app', ['lib'], RECENT);
  await add(b, 'tool', ['lib'], RECENT);
  await assert.rejects(deletePath(b.larder, 'main', hashPart('lib')), /is referred to by 2 paths in cache 'main'/);
  await b.index.putPin('main', 'keep', hashPart('tool'), NOW);
  await assert.rejects(deletePath(b.larder, 'main', hashPart('lib'), { withDependents: true }), /pin 'keep'/);
  await b.index.deletePin('main', 'keep');
  // A path pushed between the check and the deletion that refers to one of them: nothing goes.
  b.before.deletePaths = async (index) => {
    await index.putNar({ ...narRecord('main', 'late'), fileHash: pathRecord('main', 'late').fileHash, createdAt: NOW });
    await index.putPath(pathRecord('main', 'late', [hashPart('app')]), { nar: true, references: [hashPart('app')] });
  };
  await assert.rejects(deletePath(b.larder, 'main', hashPart('lib'), { withDependents: true }), /changed meanwhile, nothing deleted/);
  assert.ok(await b.index.getPath('main', hashPart('lib')));
  const done = await deletePath(b.larder, 'main', hashPart('lib'), { withDependents: true });
  assert.deepEqual(done.deleted, ['app', 'late', 'lib', 'tool'].map((s) => `/nix/store/${hashPart(s)}-${s}`).sort());
  assert.equal(done.nars, 3, 'the late path has a NAR record but no file; the others');
  await assert.rejects(deletePath(b.larder, 'main', hashPart('lib')), /is not in cache 'main'/);
});
