// `larder verify` finds exactly what was broken. A real SQLite index and
// directory store are filled through the real upload flow (publish.ts: NAR
// verified on the way in, narinfo signed with the cache's key), then damaged
// behind larder's back, one way per test: each test asserts the exact list of
// problems, so a check that reports too much fails as surely as one that misses.

import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { signNarInfo } from '../../src/nix/fingerprint.ts';
import { parseHash } from '../../src/nix/hash.ts';
import { formatNarInfo, parseNarInfo } from '../../src/nix/narinfo.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { parseSecretKey } from '../../src/nix/signing-key.ts';
import { openSqliteIndex } from '../../src/index/sql-index.ts';
import { createCache, setUpstreams } from '../../src/services/cache-admin.ts';
import { assembleLarder, type Larder } from '../../src/services/larder.ts';
import { receiveNar, receiveNarInfo } from '../../src/services/publish.ts';
import { verify, type VerifyReport } from '../../src/services/verify.ts';
import { FilesystemStore } from '../../src/storage/filesystem-store.ts';
import { larder as runLarder } from '../helpers/larder-cli.ts';
import { makeClosure, makePath, randomHashPart, sha256, type PathUpload } from './fixtures.ts';

const HOUR = 3_600_000;

interface Bench {
  readonly dir: string;
  readonly larder: Larder;
  readonly paths: PathUpload[];
  /** The raw database, to damage rows the interface would never let go. */
  sql(statement: string, ...params: (string | number)[]): void;
  file(key: string): string;
  /** verify as if `laterMs` had passed (orphans are judged by age). */
  check(options?: { laterMs?: number; narHashes?: boolean }): Promise<VerifyReport>;
}

/** A data directory laid out as `larder serve --data` keeps it, so the CLI can verify it too. */
async function bench(t: TestContext, count = 6, compression: 'zstd' | 'none' = 'zstd'): Promise<Bench> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-verify-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const index = await openSqliteIndex(join(dir, 'index.sqlite'));
  const store = await FilesystemStore.open(join(dir, 'store'));
  const larder = assembleLarder(index, store, { storeDir: '/nix/store', keyNamePrefix: 'test-', maxNarSize: 2 ** 30, maxSmallBodySize: 2 ** 20 });
  t.after(() => larder.close());
  await createCache(larder, 'main');
  const paths = await makeClosure('v', count, { compression });
  for (const up of paths) await publish(larder, up);
  return {
    dir,
    larder,
    paths,
    sql: (statement, ...params) => {
      const db = new DatabaseSync(join(dir, 'index.sqlite'));
      try {
        db.exec('PRAGMA foreign_keys = ON');
        db.prepare(statement).run(...params);
      } finally {
        db.close();
      }
    },
    file: (key) => join(dir, 'store', key),
    check: ({ laterMs = 0, narHashes = true } = {}) => verify({ ...larder, now: () => Date.now() + laterMs }, { narHashes }),
  };
}

async function publish(larder: Larder, up: PathUpload): Promise<void> {
  await receiveNar(larder, 'main', up.url.slice(4), Readable.from([up.file]));
  await receiveNarInfo(larder, 'main', up.hashPart, up.narinfo());
}

/** The problems as `kind subject` lines, sorted, for exact comparison. */
function problems(report: VerifyReport): string[] {
  return report.problems.map((p) => `${p.kind} ${p.subject}`).sort();
}

test('a cache filled through the upload flow verifies clean, every NAR decompressed and hashed', async (t) => {
  const b = await bench(t);
  const report = await b.check();
  assert.deepEqual(report.problems, []);
  assert.equal(report.ok, true);
  const [main] = report.caches;
  assert.equal(main!.paths, 6);
  assert.equal(main!.nars, 6);
  assert.equal(main!.bytesRead, b.paths.reduce((n, p) => n + p.file.length, 0), 'every byte of every NAR file was read');
  assert.deepEqual(main!.inFlight, { nars: 0, files: 0 });
  // Far in the future nothing turns into an orphan either: everything has its record.
  assert.deepEqual((await b.check({ laterMs: 48 * HOUR })).problems, []);
});

test('a deleted NAR file, and a truncated one', async (t) => {
  const b = await bench(t);
  const [gone, cut] = [b.paths[1]!, b.paths[4]!];
  await unlink(b.file(`main/${gone.url}`));
  await truncate(b.file(`main/${cut.url}`), cut.file.length - 3);
  const report = await b.check();
  assert.deepEqual(problems(report), [`nar-contents ${cut.storePath}`, `nar-file ${cut.storePath}`, `nar-file ${cut.storePath}`, `nar-file ${gone.storePath}`].sort());
  const messages = report.problems.map((p) => p.message).join('\n');
  assert.match(messages, new RegExp(`main/${gone.url} is missing from the blob store`));
  assert.match(messages, new RegExp(`main/${cut.url.replace(/\./g, '\\.')} has ${cut.file.length - 3} bytes but FileSize is ${cut.file.length}`));
  assert.match(messages, /not valid zstd data/);
  // Without NAR hashes a missing file and a wrong size are still found, from the sizes alone.
  assert.deepEqual(problems(await b.check({ narHashes: false })), [`nar-file ${cut.storePath}`, `nar-file ${gone.storePath}`].sort());
});

test('a flipped byte inside an uncompressed NAR: FileHash and NarHash both wrong, the grammar fine', async (t) => {
  const b = await bench(t, 4, 'none');
  const victim = b.paths[2]!;
  const path = b.file(`main/${victim.url}`);
  const bytes = await readFile(path);
  const at = bytes.indexOf('v 2\n') + 1; // inside the file's contents (makeClosure's first line)
  bytes[at] = bytes[at]! ^ 0x01;
  await writeFile(path, bytes);
  const report = await b.check();
  assert.deepEqual(problems(report), [`nar-contents ${victim.storePath}`, `nar-file ${victim.storePath}`]);
  assert.match(report.problems.find((p) => p.kind === 'nar-file')!.message, /hashes to sha256:\S+, not its FileHash/);
  assert.match(report.problems.find((p) => p.kind === 'nar-contents')!.message, /decompresses to NarHash sha256:\S+, not sha256:/);
  assert.deepEqual((await b.check({ narHashes: false })).problems, [], 'a same-size change needs the hashes to be seen');
});

test('a NAR whose hashes all agree but which is not a NAR: the grammar check', async (t) => {
  const b = await bench(t, 1);
  const garbage = Buffer.from('this is not a nix archive at all, though every hash of it is right\n');
  const fileHash = encodeNix32(sha256(garbage));
  const hashPart = randomHashPart();
  const base = `${hashPart}-forged`;
  await writeFile(b.file(`main/nar/${fileHash}.nar`), garbage);
  const keys = (await b.larder.index.listKeys('main')).map((k) => parseSecretKey(k.secretKey));
  const info = {
    storePath: { hashPart, name: 'forged' },
    url: `nar/${fileHash}.nar`,
    compression: 'none',
    fileHash: parseHash(`sha256:${fileHash}`),
    fileSize: garbage.length,
    narHash: parseHash(`sha256:${fileHash}`),
    narSize: garbage.length,
    references: [],
    sigs: [],
  };
  const narinfo = formatNarInfo(signNarInfo(info, keys));
  await b.larder.index.putNar({ cache: 'main', fileHash, url: info.url, compression: 'none', fileSize: garbage.length, narHash: `sha256:${fileHash}`, narSize: garbage.length, createdAt: Date.now() });
  await b.larder.store.put(`main/${hashPart}.narinfo`, narinfo);
  await b.larder.index.putPath({ cache: 'main', hashPart, base, fileHash, narSize: garbage.length, references: [], narinfo, createdAt: Date.now() });
  const report = await b.check();
  assert.deepEqual(problems(report), [`nar-contents /nix/store/${base}`]);
  assert.match(report.problems[0]!.message, /NAR is malformed: NAR byte 0: /);
});

test('a reference gone from the cache; one recorded as held by an upstream is fine', async (t) => {
  const b = await bench(t, 3);
  // paths[2] refers to paths[1] (see makeClosure); remove paths[1] the way no larder code would.
  const [, dropped, referrer] = b.paths;
  assert.ok(referrer!.references.includes(dropped!.base));
  b.sql('DELETE FROM paths WHERE cache = ? AND hash_part = ?', 'main', dropped!.hashPart);
  await unlink(b.file(`main/${dropped!.hashPart}.narinfo`));
  b.sql('DELETE FROM nars WHERE cache = ? AND file_hash = ?', 'main', dropped!.fileHash);
  await unlink(b.file(`main/${dropped!.url}`));
  const report = await b.check();
  assert.deepEqual(problems(report), [`reference ${referrer!.storePath}`]);
  assert.match(report.problems[0]!.message, new RegExp(`reference ${dropped!.base} is not in the cache`));

  // An upload accepted because an upstream holds its reference (the presence publish.ts recorded).
  const upstream = { url: 'http://upstream.invalid', publicKeys: [(await b.larder.index.listKeys('main'))[0]!.publicKey.replace(/^[^:]+/, 'upstream-1')], priority: 40 };
  await setUpstreams(b.larder, 'main', [upstream]);
  const elsewhere = `${randomHashPart()}-upstream-dep`;
  await b.larder.index.recordUpstreamPresence({ ...upstream, cache: 'main' }, [{ hashPart: elsewhere.slice(0, 32), present: true, checkedAt: Date.now() }]);
  const user = await makePath('uses-upstream', 'u', [elsewhere]);
  await publish(b.larder, user);
  const again = await b.check();
  assert.deepEqual(problems(again), [`reference ${referrer!.storePath}`], 'the upstream-held reference is no problem');
  assert.equal(again.caches[0]!.upstreamReferences, 1);
});

test('a broken signature, and a narinfo file that differs from or is missing beside its index row', async (t) => {
  const b = await bench(t, 4);
  const [forged, edited, lost] = [b.paths[0]!, b.paths[1]!, b.paths[3]!];
  const narinfo = (await b.larder.index.getPath('main', forged.hashPart))!.narinfo;
  // Flip one base64 character of the signature: same key name, bytes that do not verify.
  const broken = narinfo.replace(/^(Sig: [^:]+:)(.)/m, (_, head: string, c: string) => head + (c === 'A' ? 'B' : 'A'));
  assert.notEqual(broken, narinfo);
  b.sql('UPDATE paths SET narinfo = ? WHERE cache = ? AND hash_part = ?', broken, 'main', forged.hashPart);
  await writeFile(b.file(`main/${forged.hashPart}.narinfo`), broken);
  await appendFile(b.file(`main/${edited.hashPart}.narinfo`), 'X-Tampered: yes\n');
  await unlink(b.file(`main/${lost.hashPart}.narinfo`));
  const report = await b.check();
  assert.deepEqual(problems(report), [
    `narinfo-file ${edited.storePath}`,
    `narinfo-file ${lost.storePath}`,
    `signature ${forged.storePath}`,
    `signature ${forged.storePath}`,
  ].sort());
  const sigs = report.problems.filter((p) => p.kind === 'signature').map((p) => p.message).sort();
  assert.match(sigs[0]!, /^no valid signature by a key clients trust \(test-main-1\)$/);
  assert.match(sigs[1]!, /^signature by key test-main-1 does not verify$/);
  assert.ok(parseNarInfo(broken).sigs.length === 1);
});

test('orphans: a NAR without a narinfo, a stray narinfo file, an unrecorded NAR file — in flight while young', async (t) => {
  const b = await bench(t, 2);
  const lonely = await makePath('lonely', 'uploaded, never described');
  await receiveNar(b.larder, 'main', lonely.url.slice(4), Readable.from([lonely.file]));
  const strayHash = randomHashPart();
  await writeFile(b.file(`main/${strayHash}.narinfo`), b.paths[0]!.narinfo());
  const unrecorded = `nar/${encodeNix32(sha256('unrecorded'))}.nar.zst`;
  await writeFile(b.file(`main/${unrecorded}`), 'bytes no record knows');

  const young = await b.check();
  assert.deepEqual(young.problems, [], 'younger than the upload grace period: uploads in flight');
  assert.deepEqual(young.caches[0]!.inFlight, { nars: 1, files: 2 });

  const old = await b.check({ laterMs: 2 * HOUR });
  assert.deepEqual(problems(old), [`orphan-file main/${strayHash}.narinfo`, `orphan-file main/${unrecorded}`, `orphan-nar main/${lonely.url}`].sort());
  assert.deepEqual(old.caches[0]!.inFlight, { nars: 0, files: 0 });

  // A NAR record whose file is gone is a problem whatever its age.
  await unlink(b.file(`main/${lonely.url}`));
  assert.deepEqual(problems(await b.check()), [`nar-file main/${lonely.url}`]);

  // A temporary file a crashed upload left, older than the grace period.
  const temp = b.file('.tmp/0123456789abcdef01234567');
  await writeFile(temp, 'half an upload');
  await utimes(temp, new Date(Date.now() - 2 * HOUR), new Date(Date.now() - 2 * HOUR));
  assert.deepEqual(problems(await b.check()), ['abandoned (blob store)', `nar-file main/${lonely.url}`]);
});

test('the CLI: exit 0 clean, 1 with one line per problem, 2 when it cannot check; --json', async (t) => {
  const b = await bench(t, 3);
  await b.larder.close();
  const env = { ...process.env, LARDER_GC_UPLOAD_GRACE: '1h' };
  const clean = await runLarder(['verify', '--data', b.dir], env);
  assert.match(clean, /^cache main: 3 paths, 3 NARs \(\S+ \S+ read and hashed\)$/m);
  assert.match(clean, /^verify: no problems found$/m);

  await unlink(b.file(`main/${b.paths[0]!.url}`));
  await writeFile(b.file(`main/${randomHashPart()}.narinfo`), 'stray\n');
  const failed = (await runLarder(['verify', '--data', b.dir], { ...env, LARDER_GC_UPLOAD_GRACE: '1ms' }).then(
    () => assert.fail('problems must exit 1'),
    (error: { code: number; stdout: string }) => error,
  )) as { code: number; stdout: string };
  assert.equal(failed.code, 1);
  const lines = failed.stdout.trim().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('main ')).length, 2, failed.stdout);
  assert.ok(lines.includes(`main ${b.paths[0]!.storePath}: main/${b.paths[0]!.url} is missing from the blob store`), failed.stdout);
  assert.match(failed.stdout, /^main main\/\S+\.narinfo: no index record knows this file/m);
  assert.match(failed.stdout, /^verify: 2 problems found$/m);

  const json = await runLarder(['verify', '--json', '--no-nar-hashes', '--cache', 'main', '--data', b.dir], env).then(
    () => assert.fail('exit 1'),
    (error: { code: number; stdout: string }) => error,
  );
  const report = JSON.parse(json.stdout) as VerifyReport;
  assert.equal(report.ok, false);
  assert.equal(report.narHashes, false);
  assert.deepEqual(report.problems.map((p) => p.kind), ['nar-file']);

  for (const args of [['verify', '--cache', 'nope', '--data', b.dir], ['verify', '--bogus']]) {
    const error = (await runLarder(args, env).then(
      () => assert.fail(`${args.join(' ')} must fail`),
      (e: { code: number; stderr: string }) => e,
    )) as { code: number; stderr: string };
    assert.equal(error.code, 2, `${args.join(' ')}: ${error.stderr}`);
    assert.doesNotMatch(error.stderr, /\n\s+at /, 'no stack trace');
  }
});
