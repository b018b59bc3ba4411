// Garbage collection end to end, on both engines: the real `larder serve`, the
// real `larder` CLI, the real nix pushing and substituting. Paths are made
// "old" by writing their times straight into the index, after a dry run has
// flushed the accesses the pushes noted.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { IndexConfig } from '../../src/config/config.ts';
import { openIndexDriver } from '../../src/index/open-index.ts';
import type { SqlDriver } from '../../src/index/sql-driver.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { backends, scaleOut, type Backend } from '../helpers/backends.ts';
import { larder } from '../helpers/larder-cli.ts';
import { api, startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix, type Built, type NixEnv } from '../helpers/nix-env.ts';

const DAY = 86_400_000;

interface Setup {
  readonly server: RunningLarder;
  readonly env: NodeJS.ProcessEnv;
  readonly db: SqlDriver;
  readonly nix: NixEnv;
}

async function setUp(t: TestContext, backend: Backend, extraEnv: NodeJS.ProcessEnv = {}): Promise<Setup | undefined> {
  if (skipWithoutNix(t)) return undefined;
  const backendEnv = await backend.env(t);
  if (!backendEnv) return undefined;
  const env = { ...backendEnv, ...extraEnv };
  const server = await startLarder(t, { env });
  const config: IndexConfig =
    env.LARDER_INDEX_TYPE === 'postgres' ? { type: 'postgres', url: env.LARDER_INDEX_URL! } : { type: 'sqlite', path: join(server.dataDir, 'index.sqlite') };
  const db = await openIndexDriver(config);
  t.after(() => db.close());
  return { server, env, db, nix: await nixEnv(t) };
}

const as = (server: RunningLarder) => ['--server', server.url, '--token', server.adminToken];
const hashOf = (storePath: string) => storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
const auth = (server: RunningLarder) => ({ Authorization: `Bearer ${server.writeToken}` });

async function push(nix: NixEnv, server: RunningLarder, paths: readonly string[]): Promise<void> {
  const netrc = await nix.netrc(server.cacheUrl, server.writeToken);
  await nix.run('nix', ['copy', '--to', `${server.cacheUrl}?compression=zstd`, ...paths], { env: nix.withConfig([`netrc-file = ${netrc}`]) });
}

async function substitute(nix: NixEnv, server: RunningLarder, paths: readonly string[]): Promise<void> {
  const netrc = await nix.netrc(server.cacheUrl, server.writeToken);
  await nix.run('nix-store', ['--realise', ...paths], {
    env: nix.withConfig([`substituters = ${server.cacheUrl}`, 'require-sigs = true', `trusted-public-keys = ${server.publicKey}`, `netrc-file = ${netrc}`]),
  });
}

interface GcJson {
  paths: number;
  bytes: number;
  kept: {
    paths: number;
    pins: { name: string; storePath: string; paths: number | null }[];
    recentRoots: number;
    referenced: number;
    examples: { storePath: string; reason: string; referencedBy?: string }[];
  };
  freed: { paths: number; bytes: number; digest: string; list?: string[]; expired: { paths: number }; evicted: { paths: number } };
  quota: { maxSize: number; bytesBefore: number; bytesAfter: number; reached: boolean } | null;
  deleted: { paths: number; nars: number; bytes: number; digest: string; list?: string[] } | null;
  orphans: { nars: number; narBytes: number; files: number; abandoned: number };
}

async function gc(server: RunningLarder, ...flags: string[]): Promise<GcJson> {
  return JSON.parse(await larder(['gc', 'main', '--json', '--list', ...flags, ...as(server)])) as GcJson;
}

/** Sets paths' creation and last access to `at` (and their NARs' creation, so they are no uploads in flight). */
async function age(db: SqlDriver, storePaths: readonly string[], at: number): Promise<void> {
  for (const path of storePaths) {
    await db.run('UPDATE paths SET created_at = ?, last_access = ? WHERE cache = ? AND hash_part = ?', [at, at, 'main', hashOf(path)]);
  }
}

async function narinfo(server: RunningLarder, hashPart: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server.cacheUrl}/${hashPart}.narinfo`, { headers: auth(server) });
  return { status: res.status, text: await res.text() };
}

/**
 * Every path the index holds is served whole: its narinfo, its NAR, and the narinfo of every
 * reference. Returns the store paths held.
 */
async function checkComplete(server: RunningLarder, db: SqlDriver): Promise<Set<string>> {
  const rows = await db.all<{ hash_part: string; base: string }>('SELECT hash_part, base FROM paths WHERE cache = ?', ['main']);
  const held = new Set(rows.map((r) => `/nix/store/${r.base}`));
  for (const { hash_part: hashPart, base } of rows) {
    const info = await narinfo(server, hashPart);
    assert.equal(info.status, 200, `${base}.narinfo`);
    const url = /^URL: (\S+)$/m.exec(info.text)![1]!;
    const nar = await fetch(`${server.cacheUrl}/${url}`, { method: 'HEAD', headers: auth(server) });
    assert.equal(nar.status, 200, `${base}: its NAR ${url}`);
    for (const ref of (/^References: ?(.*)$/m.exec(info.text)?.[1] ?? '').split(' ').filter(Boolean)) {
      assert.equal((await narinfo(server, ref.slice(0, 32))).status, 200, `${base} refers to ${ref}, which must be there`);
    }
  }
  return held;
}

function outs(built: readonly Built[]): Record<string, string> {
  return Object.fromEntries(built.map((b) => [b.name, b.out]));
}

for (const backend of backends) {
  test(`${backend.name}: GC keeps pinned and recent closures whole, deletes the rest, and Nix substitutes what stays`, async (t) => {
    const setup = await setUp(t, backend);
    if (!setup) return;
    const { server, db, nix } = setup;
    const p = outs(
      await nix.buildClosure([
        { name: 'lib', size: 5000 },
        { name: 'a-bin', deps: ['lib'], size: 3000, random: true },
        { name: 'a-app', deps: ['a-bin', 'lib'] },
        { name: 'b-data', size: 4000, random: true },
        { name: 'b-app', deps: ['lib', 'b-data'] },
        { name: 'c-dep', size: 3000 },
        { name: 'c-app', deps: ['c-dep'] },
        { name: 'd-dep', size: 2000 },
        { name: 'd-app', deps: ['d-dep'] },
        { name: 'e', size: 6000, random: true },
      ]),
    );
    await push(nix, server, [p['a-app']!, p['b-app']!, p['c-app']!, p['d-app']!, p.e!]);
    await larder(['cache', 'update', 'main', '--retention', '30d', ...as(server)]);
    await larder(['pin', 'create', 'main', 'release', p['c-app']!, ...as(server)]);
    assert.match(await larder(['pin', 'list', 'main', ...as(server)]), new RegExp(`release .*${p['c-app']}`));

    // Written by the dry run: what the pushes noted, before the ages set below.
    const first = await gc(server, '--dry-run');
    assert.equal(first.freed.paths, 0, 'all recent');
    const old = ['lib', 'a-bin', 'b-data', 'b-app', 'c-dep', 'c-app', 'd-app', 'e'].map((n) => p[n]!);
    await age(db, old, Date.now() - 60 * DAY);
    const expected = ['b-app', 'b-data', 'd-app', 'e'].map((n) => p[n]!).sort();

    const before = await db.all<{ n: number }>('SELECT count(*) AS n FROM paths WHERE cache = ?', ['main']);
    const dry = await gc(server, '--dry-run');
    assert.deepEqual(dry.freed.list, expected);
    assert.equal(dry.deleted, null);
    assert.equal(dry.freed.expired.paths, 4);
    assert.deepEqual(dry.kept.pins.map((pin) => [pin.name, pin.storePath, pin.paths]), [['release', p['c-app'], 2]]);
    assert.equal(dry.kept.recentRoots, 2, 'a-app and d-dep');
    assert.equal(dry.kept.referenced, 3, 'lib, a-bin, c-dep');
    // Looked at in the index: a GET would be an access, and keep them.
    assert.deepEqual(await db.all('SELECT count(*) AS n FROM paths WHERE cache = ?', ['main']), before, 'a dry run deletes nothing');

    const human = await larder(['gc', 'main', '--dry-run', ...as(server)]);
    assert.match(human, /pinned: 1 pin\n {4}release: \/nix\/store\/\S+-c-app-\S+ \(closure: 2 paths/);
    assert.match(human, /accessed within 30d: 2 paths/);
    assert.match(human, /referenced by kept paths .*: 3 paths, e\.g\.\n {4}\/nix\/store\/\S+ referenced by \/nix\/store\//);
    assert.match(human, /would free 4 paths, [\d.]+ KiB: 4 not accessed within 30d/);

    const real = await gc(server);
    assert.deepEqual(real.freed.list, expected, 'the plan is the dry run’s');
    assert.deepEqual(real.deleted?.list, expected, 'and the run deletes exactly that');
    assert.equal(real.deleted?.digest, dry.freed.digest);
    assert.equal(real.deleted?.nars, 4);

    const held = await checkComplete(server, db);
    assert.deepEqual([...held].sort(), ['lib', 'a-bin', 'a-app', 'c-dep', 'c-app', 'd-dep'].map((n) => p[n]!).sort());
    for (const path of expected) assert.equal((await narinfo(server, hashOf(path))).status, 404, `${path} is gone at once`);

    const all = Object.values(p);
    await nix.deleteLocally(all);
    await substitute(nix, server, [p['a-app']!, p['c-app']!, p['d-dep']!]);
    for (const name of ['lib', 'a-bin', 'a-app', 'c-dep', 'c-app', 'd-dep']) assert.ok(await nix.isValid(p[name]!), name);
    await assert.rejects(substitute(nix, server, [p.e!]));

    const again = await gc(server);
    assert.equal(again.freed.paths, 0, 'a second run finds nothing');
  });

  test(`${backend.name}: a quota run frees at least the excess, least recently used first, and breaks no closure`, async (t) => {
    const setup = await setUp(t, backend);
    if (!setup) return;
    const { server, db, nix } = setup;
    // Four closures root → dep, used in the order 1 (least recently) … 4; `shared` is a dependency
    // of 1 and of 4, so it is as recent as 4.
    const p = outs(
      await nix.buildClosure([
        { name: 'shared', size: 8000, random: true },
        ...[1, 2, 3, 4].flatMap((i) => [
          { name: `dep${i}`, size: 8000, random: true },
          { name: `root${i}`, deps: [`dep${i}`, ...(i === 1 || i === 4 ? ['shared'] : [])], size: 8000, random: true },
        ]),
      ]),
    );
    await push(nix, server, [1, 2, 3, 4].map((i) => p[`root${i}`]!));
    await gc(server, '--dry-run');
    const base = Date.now() - 10 * DAY;
    for (const i of [1, 2, 3, 4]) await age(db, [p[`root${i}`]!, p[`dep${i}`]!], base + i * DAY);
    await age(db, [p.shared!], base);

    const sizes = new Map(
      (
        await db.all<{ hash_part: string; file_size: number }>(
          'SELECT p.hash_part, n.file_size FROM paths p JOIN nars n ON n.cache = p.cache AND n.file_hash = p.file_hash WHERE p.cache = ?',
          ['main'],
        )
      ).map((r) => [r.hash_part, r.file_size]),
    );
    const size = (name: string) => sizes.get(hashOf(p[name]!))!;
    const total = [...sizes.values()].reduce((a, b) => a + b, 0);
    // One byte more than closure 1 without `shared` must go: closure 1, then root2.
    const maxSize = total - size('root1') - size('dep1') - 1;
    await larder(['cache', 'update', 'main', '--max-size', String(maxSize), ...as(server)]);
    const shown = (await (await api(server, '/api/v1/caches/main')).json()) as { maxSize: string; retention: string | null };
    assert.deepEqual([shown.maxSize, shown.retention], [`${maxSize}B`, null]);

    const report = await gc(server);
    assert.equal(report.bytes, total);
    assert.deepEqual(report.deleted?.list, ['root1', 'dep1', 'root2'].map((n) => p[n]!).sort());
    assert.ok(report.quota?.reached);
    assert.ok(report.quota!.bytesAfter <= maxSize);
    assert.ok(report.deleted!.bytes >= total - maxSize, `freed ${report.deleted!.bytes} of an excess of ${total - maxSize}`);
    assert.equal(report.freed.evicted.paths, 3);

    const held = await checkComplete(server, db);
    assert.deepEqual([...held].sort(), ['shared', 'dep2', 'dep3', 'root3', 'dep4', 'root4'].map((n) => p[n]!).sort());
    await nix.deleteLocally(Object.values(p));
    await substitute(nix, server, [p.dep2!, p.root3!, p.root4!]);
    assert.ok(await nix.isValid(p.shared!));
  });

  test(`${backend.name}: GC during pushes and downloads loses no pushed path and breaks no download`, async (t) => {
    const setup = await setUp(t, backend);
    if (!setup) return;
    const { server, db, nix } = setup;
    const oldOnes = await nix.buildClosure([
      { name: 'big', size: 6 * 2 ** 20, random: true },
      ...Array.from({ length: 12 }, (_, i) => ({ name: `old${i}`, size: 3000, ...(i > 0 && { deps: [`old${i - 1}`] }) })),
    ]);
    const o = outs(oldOnes);
    await push(nix, server, [o.big!, o.old11!]);
    await larder(['cache', 'update', 'main', '--retention', '7d', ...as(server)]);
    await gc(server, '--dry-run');
    await age(db, oldOnes.map((b) => b.out), Date.now() - 30 * DAY);
    // New closures: some refer to paths about to be collected.
    const fresh = await nix.buildClosure(
      Array.from({ length: 6 }, (_, i) => ({ name: `new${i}`, size: 2000, deps: i % 2 === 0 ? [`ref${i}`] : [] })).flatMap((d, i) =>
        i % 2 === 0 ? [{ name: `ref${i}`, size: 1000 }, d] : [d],
      ),
    );
    const f = outs(fresh);
    // Pretend the refN were pushed long ago, the same NARs and all: push them now, aged.
    const refs = [0, 2, 4].map((i) => f[`ref${i}`]!);
    await push(nix, server, refs);
    await gc(server, '--dry-run');
    await age(db, refs, Date.now() - 30 * DAY);

    // A slow download of the big NAR that the run deletes: headers and a first chunk, then a pause.
    // From the index: a GET of its narinfo would be an access, and keep it.
    const bigInfo = (await db.get<{ narinfo: string }>('SELECT narinfo FROM paths WHERE cache = ? AND hash_part = ?', ['main', hashOf(o.big!)]))!
      .narinfo;
    const bigUrl = /^URL: (\S+)$/m.exec(bigInfo)![1]!;
    const bigFileHash = /^FileHash: sha256:(\S+)$/m.exec(bigInfo)![1]!;
    let startedDownload!: () => void;
    let resumeDownload!: () => void;
    const downloadStarted = new Promise<void>((resolve) => (startedDownload = resolve));
    const resumed = new Promise<void>((resolve) => (resumeDownload = resolve));
    const download = new Promise<{ hash: string; bytes: number }>((resolve, reject) => {
      const req = request(`${server.cacheUrl}/${bigUrl}`, { headers: auth(server) }, (res) => {
        assert.equal(res.statusCode, 200);
        const hasher = createHash('sha256');
        let bytes = 0;
        res.once('data', (chunk: Buffer) => {
          hasher.update(chunk);
          bytes += chunk.length;
          res.pause();
          startedDownload();
          void resumed.then(() => {
            res.on('data', (more: Buffer) => {
              hasher.update(more);
              bytes += more.length;
            });
            res.on('end', () => resolve({ hash: encodeNix32(hasher.digest()), bytes }));
            res.resume();
          });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    await downloadStarted;

    // Pushes and substitutions of kept paths, all while the collection runs.
    const pushes = [0, 1, 2, 3, 4, 5].map((i) =>
      push(nix, server, [f[`new${i}`]!]).then(
        () => ({ i, ok: true }),
        (error: unknown) => ({ i, ok: false, error }),
      ),
    );
    // The download resumes only once the run (which deletes its NAR) is over.
    const run = gc(server).finally(resumeDownload);
    const [report, pushed, finished] = await Promise.all([run, Promise.all(pushes), download]);

    t.diagnostic(
      `pushes refused by a race with the run (then repeated): ${pushed.filter((x) => !x.ok).length} of ${pushed.length}; ` +
        `run deleted ${report.deleted?.paths} paths, spared ${JSON.stringify((report.deleted as { spared?: unknown } | null)?.spared)}`,
    );
    assert.equal(finished.hash, bigFileHash, 'the download being streamed while its NAR was deleted finished whole');
    assert.ok(report.deleted!.list!.includes(o.big!), 'its NAR was deleted meanwhile');
    assert.equal((await fetch(`${server.cacheUrl}/${bigUrl}`, { headers: auth(server) })).status, 404);

    // Every push that succeeded is there with its closure; one that lost a race was refused,
    // nothing half-done, and succeeds when repeated.
    for (const { i, ok } of pushed) {
      if (!ok) await push(nix, server, [f[`new${i}`]!]);
      assert.equal((await narinfo(server, hashOf(f[`new${i}`]!))).status, 200, `new${i} (first push ${ok ? 'succeeded' : 'failed'})`);
    }
    await checkComplete(server, db);
    await nix.deleteLocally(fresh.map((b) => b.out));
    await substitute(nix, server, [0, 1, 2, 3, 4, 5].map((i) => f[`new${i}`]!));
  });

  test(`${backend.name}: path delete refuses while referred to, --with-dependents deletes the referrers too, pins protect`, async (t) => {
    const setup = await setUp(t, backend);
    if (!setup) return;
    const { server, db, nix } = setup;
    const p = outs(await nix.buildClosure([{ name: 'base' }, { name: 'mid', deps: ['base'] }, { name: 'top', deps: ['mid'] }, { name: 'other', deps: ['base'] }]));
    await push(nix, server, [p.top!, p.other!]);

    const refused = await larder(['path', 'delete', 'main', p.base!, ...as(server)]).catch((e: { stderr: string }) => e.stderr);
    assert.match(refused, /-base-\S+ is referred to by 3 paths in cache 'main': .*; pass --with-dependents/);
    for (const name of ['mid', 'top', 'other']) assert.ok(refused.includes(p[name]!), `names ${name}: ${refused}`);
    await larder(['pin', 'create', 'main', 'keep', p.other!, ...as(server)]);
    const pinned = await larder(['path', 'delete', 'main', p.base!, '--with-dependents', ...as(server)]).catch((e: { stderr: string }) => e.stderr);
    assert.match(pinned, /pinned, so not deleted: .*-other-.* \(pin 'keep'\); delete the pin first/);

    const deleted = JSON.parse(await larder(['path', 'delete', 'main', p.mid!, '--with-dependents', '--json', ...as(server)])) as {
      deleted: string[];
      nars: number;
    };
    assert.deepEqual(deleted.deleted, [p.mid!, p.top!].sort());
    assert.equal(deleted.nars, 2);
    assert.deepEqual([...(await checkComplete(server, db))].sort(), [p.base!, p.other!].sort());

    await larder(['pin', 'delete', 'main', 'keep', ...as(server)]);
    const one = await larder(['path', 'delete', 'main', p.other!, ...as(server)]);
    assert.match(one, /^deleted 1 path from cache main \(1 NAR, /);
    const res = await api(server, `/api/v1/caches/main/paths/${hashOf(p.top!)}`, { method: 'DELETE' });
    assert.equal(res.status, 404, 'gone already');
  });

  test(`${backend.name}: orphans older than the grace period go: NARs without a narinfo, their records, stray files`, async (t) => {
    const setup = await setUp(t, backend);
    if (!setup) return;
    const { server, db, nix } = setup;
    const [lonely, young] = await nix.buildClosure([{ name: 'lonely', size: 5000, random: true }, { name: 'young', size: 5000, random: true }]);
    // Upload NARs without their narinfos, as a push killed half-way leaves them.
    for (const built of [lonely!, young!]) {
      const dir = join(nix.dir, `up-${built.name}`);
      await nix.run('nix', ['copy', '--to', `file://${dir}?compression=none`, built.out]);
      const nar = (await readdir(join(dir, 'nar')))[0]!;
      const body = await import('node:fs/promises').then((fs) => fs.readFile(join(dir, 'nar', nar)));
      const res = await fetch(`${server.cacheUrl}/nar/${nar}`, { method: 'PUT', body, headers: auth(server) });
      assert.equal(res.status, 201, await res.text());
    }
    const nars = await db.all<{ file_hash: string }>('SELECT file_hash FROM nars WHERE cache = ? ORDER BY created_at', ['main']);
    assert.equal(nars.length, 2);
    await db.run('UPDATE nars SET created_at = ? WHERE cache = ? AND file_hash = ?', [Date.now() - 2 * 3_600_000, 'main', nars[0]!.file_hash]);
    let strayFile: string | undefined;
    let tempFile: string | undefined;
    if (!setup.env.LARDER_STORAGE_TYPE) {
      const store = join(server.dataDir, 'store');
      strayFile = join(store, 'main', `${'0'.repeat(32)}.narinfo`);
      tempFile = join(store, '.tmp', 'dead-upload');
      const longAgo = new Date(Date.now() - 2 * 3_600_000);
      for (const file of [strayFile, tempFile]) {
        await mkdir(join(file, '..'), { recursive: true });
        await writeFile(file, 'left behind');
        await utimes(file, longAgo, longAgo);
      }
    }

    const dry = await gc(server, '--dry-run');
    assert.equal(dry.orphans.nars, 1);
    assert.ok(dry.orphans.narBytes > 5000);
    assert.equal(await db.get<{ n: number }>('SELECT count(*) AS n FROM nars WHERE cache = ?', ['main']).then((r) => r?.n), 2, 'dry run');
    const real = await gc(server);
    assert.deepEqual(real.orphans, dry.orphans, 'the dry run said what the run removed');
    const left = await db.all<{ file_hash: string }>('SELECT file_hash FROM nars WHERE cache = ?', ['main']);
    assert.deepEqual(left.map((r) => r.file_hash), [nars[1]!.file_hash], 'the young upload stays (in flight)');
    const url = (fileHash: string) => `${server.cacheUrl}/nar/${fileHash}.nar`;
    assert.equal((await fetch(url(nars[0]!.file_hash), { method: 'HEAD', headers: auth(server) })).status, 404);
    assert.equal((await fetch(url(nars[1]!.file_hash), { method: 'HEAD', headers: auth(server) })).status, 200);
    if (strayFile && tempFile) {
      assert.equal(real.orphans.files, 1);
      assert.equal(real.orphans.abandoned, 1);
      for (const file of [strayFile, tempFile]) await assert.rejects(stat(file), /ENOENT/);
    }
  });

  test(`${backend.name}: accesses keep paths: a download, the missing query, an identical re-upload`, async (t) => {
    const setup = await setUp(t, backend);
    if (!setup) return;
    const { server, db, nix } = setup;
    const p = outs(await nix.buildClosure([{ name: 'fetched' }, { name: 'asked' }, { name: 'reuploaded' }, { name: 'forgotten' }]));
    await push(nix, server, Object.values(p));
    await larder(['cache', 'update', 'main', '--retention', '1d', ...as(server)]);
    await gc(server, '--dry-run');
    await age(db, Object.values(p), Date.now() - 3 * DAY);

    assert.equal((await narinfo(server, hashOf(p.fetched!))).status, 200);
    const missing = await api(server, '/api/v1/caches/main/missing', { method: 'POST', token: server.writeToken, body: JSON.stringify({ paths: [p.asked] }) });
    assert.deepEqual(await missing.json(), { missing: [] });
    // From the index, not by a GET: that would be an access of its own.
    const { narinfo: text } = (await db.get<{ narinfo: string }>('SELECT narinfo FROM paths WHERE cache = ? AND hash_part = ?', [
      'main',
      hashOf(p.reuploaded!),
    ]))!;
    const again = await fetch(`${server.cacheUrl}/${hashOf(p.reuploaded!)}.narinfo`, { method: 'PUT', body: text, headers: auth(server) });
    assert.equal(again.status, 200, 'identical: nothing changes but the access');
    // The GET above was an access too; this run writes the notes and plans with them.
    const report = await gc(server);
    assert.deepEqual(report.deleted?.list, [p.forgotten!]);
  });

  test(`${backend.name}: the admin API: policy in the cache JSON, pins with a write token, refusals`, async (t) => {
    const setup = await setUp(t, backend);
    if (!setup) return;
    const { server, nix } = setup;
    const [built] = await nix.buildClosure([{ name: 'pinme' }]);
    await push(nix, server, [built!.out]);
    const patch = (body: unknown) => api(server, '/api/v1/caches/main', { method: 'PATCH', body: JSON.stringify(body) });
    const set = await patch({ retention: '30d', maxSize: '200GiB' });
    assert.equal(set.status, 200, await set.text());
    const shown = (await (await api(server, '/api/v1/caches/main')).json()) as { retention: string; maxSize: string };
    assert.deepEqual([shown.retention, shown.maxSize], ['30d', '200GiB']);
    assert.equal((await patch({ retention: 'soon' })).status, 400);
    assert.equal((await patch({ maxSize: -1 })).status, 400);
    const cleared = (await (await patch({ retention: null, maxSize: null })).json()) as { retention: null; maxSize: null };
    assert.deepEqual([cleared.retention, cleared.maxSize], [null, null]);

    const pin = (name: string, body: unknown, token = server.writeToken) =>
      api(server, `/api/v1/caches/main/pins/${encodeURIComponent(name)}`, { method: 'PUT', body: JSON.stringify(body), token });
    const created = await pin('ci-main', { storePath: built!.out });
    assert.equal(created.status, 200, await created.clone().text());
    assert.deepEqual(((await created.json()) as { name: string; storePath: string }).storePath, built!.out);
    assert.equal((await pin('ci-main', { storePath: `/nix/store/${'0'.repeat(32)}-absent` })).status, 409);
    assert.equal((await pin('bad/name', { storePath: built!.out })).status, 400);
    assert.equal((await pin('x y', { storePath: built!.out })).status, 400);
    const read = await api(server, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ cache: 'main', permission: 'read' }) });
    const readToken = ((await read.json()) as { token: string }).token;
    assert.equal((await pin('ci-main', { storePath: built!.out }, readToken)).status, 403);
    const listed = (await (await api(server, '/api/v1/caches/main/pins', { token: readToken })).json()) as { name: string }[];
    assert.deepEqual(listed.map((l) => l.name), ['ci-main']);
    assert.equal((await api(server, '/api/v1/caches/main/gc', { method: 'POST', body: '{}', token: server.writeToken })).status, 403);
    assert.equal((await api(server, '/api/v1/caches/main/pins/ci-main', { method: 'DELETE', token: server.writeToken })).status, 200);
    assert.equal((await api(server, '/api/v1/caches/main/pins/ci-main', { method: 'DELETE', token: server.writeToken })).status, 404);
  });
}

test('the server collects on its schedule; a deletion reaches another replica’s narinfo cache within a second', async (t) => {
  const setup = await setUp(t, scaleOut, { LARDER_GC_INTERVAL: '1s' });
  if (!setup) return;
  const { server: a, env, db, nix } = setup;
  const b = await startLarder(t, { env, dataDir: a.dataDir });
  const p = outs(await nix.buildClosure([{ name: 'kept' }, { name: 'collected' }, { name: 'deleted' }]));
  await push(nix, a, Object.values(p));

  await age(db, [p.collected!], Date.now() - 3 * DAY);
  await larder(['cache', 'update', 'main', '--retention', '1d', ...as(a)]);
  const count = async (path: string) =>
    (await db.get<{ n: number }>('SELECT count(*) AS n FROM paths WHERE cache = ? AND hash_part = ?', ['main', hashOf(path)]))?.n;
  const deadline = Date.now() + 20_000;
  while ((await count(p.collected!)) !== 0) {
    assert.ok(Date.now() < deadline, 'the schedule deletes the old path');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(await count(p.kept!), 1);

  // B caches a narinfo; A deletes the path.
  const viaB = () => fetch(`${b.cacheUrl}/${hashOf(p.deleted!)}.narinfo`, { headers: auth(a) }).then((r) => r.status);
  assert.equal(await viaB(), 200);
  await larder(['path', 'delete', 'main', p.deleted!, ...as(a)]);
  const deletedAt = Date.now();
  while ((await viaB()) === 200) {
    assert.ok(Date.now() - deletedAt < 1500, 'B stops serving the deleted narinfo within about a second');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});
