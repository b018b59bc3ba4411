// The index's behaviour, whatever the engine: every test here runs on SQLite
// (sql-index.test.ts) and on PostgreSQL (postgres-index.test.ts), each test on
// a new, empty database, opened through the same openIndex the server uses.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import type { IndexConfig } from '../../src/config/config.ts';
import {
  IndexConflictError,
  IndexPreconditionError,
  type CacheRecord,
  type KeyRecord,
  type NarRecord,
  type PathRecord,
  type TokenRecord,
  type Upstream,
} from '../../src/index/cache-index.ts';
import { MIGRATIONS, migrate, SchemaTooNewError } from '../../src/index/migrations.ts';
import { openIndex, openIndexDriver } from '../../src/index/open-index.ts';
import type { SqlDriver, SqlValue } from '../../src/index/sql-driver.ts';
import { SqlIndex } from '../../src/index/sql-index.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';

export interface IndexBackend {
  readonly name: 'sqlite' | 'postgres';
  /** The configuration of a new, empty database for this test; undefined after skipping the test. */
  fresh(t: TestContext): Promise<IndexConfig | undefined>;
}

export interface IndexTestContext {
  readonly t: TestContext;
  /** This test's database. */
  readonly config: IndexConfig;
  /** The index on it, migrated, closed when the test ends. */
  open(): Promise<SqlIndex>;
  /** Another connection to it, not migrated, closed when the test ends: to look at rows the interface does not show. */
  raw(): Promise<SqlDriver>;
}

/** A test on a new database of `backend`, named after the backend; skipped when the backend cannot be had. */
export function indexTest(backend: IndexBackend, name: string, fn: (ctx: IndexTestContext) => Promise<void>): void {
  test(`${backend.name}: ${name}`, async (t) => {
    const config = await backend.fresh(t);
    if (config === undefined) return;
    await fn({
      t,
      config,
      open: async () => {
        const index = await openIndex(config);
        t.after(() => index.close());
        return index;
      },
      raw: async () => {
        const db = await openIndexDriver(config);
        t.after(() => db.close());
        return db;
      },
    });
  });
}

/** `driver` as a process sees it that read schema_migrations before another process committed: empty. */
function stale(driver: SqlDriver): SqlDriver {
  return {
    dialect: driver.dialect,
    all: async <T>(sql: string, params?: readonly SqlValue[]) =>
      sql.startsWith('SELECT version FROM schema_migrations') ? [] : driver.all<T>(sql, params),
    get: (sql, params) => driver.get(sql, params),
    run: (sql, params) => driver.run(sql, params),
    exec: (sql) => driver.exec(sql),
    transaction: (fn) => driver.transaction((tx) => fn(stale(tx))),
    withMigrationLock: (fn) => driver.withMigrationLock((tx) => fn(stale(tx))),
    close: () => driver.close(),
  };
}

export async function countRows(db: SqlDriver, table: string, cache: string): Promise<number> {
  const row = await db.get<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE cache = ?`, [cache]);
  return row?.n ?? -1;
}

export function hashPart(seed: string): string {
  return encodeNix32(createHash('sha256').update(seed).digest().subarray(0, 20));
}

export function cacheRecord(name: string, overrides: Partial<CacheRecord> = {}): CacheRecord {
  return {
    name,
    public: false,
    priority: 40,
    compression: 'zstd',
    mirror: false,
    createdAt: 1_700_000_000_000,
    retentionMs: null,
    maxSize: null,
    generation: 0,
    ...overrides,
  };
}

export function keyRecord(cache: string, name: string, overrides: Partial<KeyRecord> = {}): KeyRecord {
  return {
    cache,
    name,
    secretKey: `${name}:secret`,
    publicKey: `${name}:public`,
    state: 'active',
    createdAt: 1_700_000_000_001,
    ...overrides,
  };
}

export function tokenRecord(id: string, cache: string | null, overrides: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id,
    hash: createHash('sha256').update(id).digest('hex'),
    label: `token ${id}`,
    cache,
    permission: cache === null ? 'admin' : 'read',
    createdAt: 1_700_000_000_002,
    expiresAt: null,
    revokedAt: null,
    ...overrides,
  };
}

export function narRecord(cache: string, seed: string, overrides: Partial<NarRecord> = {}): NarRecord {
  const fileHash = encodeNix32(createHash('sha256').update(seed).digest());
  return {
    cache,
    fileHash,
    url: `nar/${fileHash}.nar.zst`,
    compression: 'zstd',
    fileSize: 1234,
    narHash: `sha256:${encodeNix32(createHash('sha256').update(`nar ${seed}`).digest())}`,
    narSize: 5678,
    createdAt: 1_700_000_000_003,
    ...overrides,
  };
}

export function pathRecord(cache: string, seed: string, references: string[] = []): PathRecord {
  const part = hashPart(seed);
  return {
    cache,
    hashPart: part,
    base: `${part}-${seed}`,
    fileHash: encodeNix32(createHash('sha256').update(seed).digest()),
    narSize: 5678,
    references,
    narinfo: `StorePath: /nix/store/${part}-${seed}\n`,
    createdAt: 1_700_000_000_004,
  };
}

export function upstream(url: string, overrides: Partial<Upstream> = {}): Upstream {
  return { url, publicKeys: [`${new URL(url).hostname}-1:${'A'.repeat(43)}=`], priority: 40, ...overrides };
}

export function defineIndexSuite(backend: IndexBackend): void {
  const suiteTest = (name: string, fn: (ctx: IndexTestContext) => Promise<void>): void => indexTest(backend, name, fn);

  suiteTest('caches are created, read, listed by name, updated field by field and deleted', async (ctx) => {
    const index = await ctx.open();
    const main = cacheRecord('main', { public: true, priority: 30 });
    await index.createCache(cacheRecord('zeta'));
    await index.createCache(main);

    assert.deepEqual(await index.getCache('main'), main);
    assert.equal(await index.getCache('nope'), undefined);
    assert.deepEqual(
      (await index.listCaches()).map((c) => c.name),
      ['main', 'zeta'],
    );

    assert.deepEqual(await index.updateCache('main', { public: false }), { ...main, public: false });
    assert.deepEqual(await index.updateCache('main', { priority: 10, compression: 'xz' }), {
      ...main,
      public: false,
      priority: 10,
      compression: 'xz',
    });
    assert.deepEqual(await index.updateCache('main', {}), { ...main, public: false, priority: 10, compression: 'xz' });
    assert.deepEqual(await index.getCache('main'), { ...main, public: false, priority: 10, compression: 'xz' });
    assert.deepEqual(await index.getCache('zeta'), cacheRecord('zeta'), 'other caches are untouched');
    assert.equal(await index.updateCache('nope', { priority: 1 }), undefined);
    assert.equal(await index.updateCache('nope', {}), undefined);

    assert.equal(await index.deleteCache('main'), true);
    assert.equal(await index.deleteCache('main'), false);
    assert.equal(await index.getCache('main'), undefined);
    assert.deepEqual(await index.listCaches(), [cacheRecord('zeta')]);
  });

  suiteTest('mirror is stored with the cache, off by default, and updated like the other settings', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('plain'));
    await index.createCache(cacheRecord('proxy', { mirror: true }));
    assert.equal((await index.getCache('plain'))?.mirror, false);
    assert.equal((await index.getCache('proxy'))?.mirror, true);
    assert.deepEqual(await index.updateCache('plain', { mirror: true }), cacheRecord('plain', { mirror: true }));
    assert.deepEqual(await index.updateCache('proxy', { mirror: false, priority: 5 }), cacheRecord('proxy', { priority: 5 }));
  });

  suiteTest('a cache written by schema version 1 reads as not a mirror, with no upstreams', async (ctx) => {
    const raw = await ctx.raw();
    await migrate(raw, MIGRATIONS.filter((m) => m.version === 1));
    await raw.run('INSERT INTO caches (name, is_public, priority, compression, created_at) VALUES (?, ?, ?, ?, ?)', ['old', 1, 40, 'xz', 5]);
    const index = await ctx.open();
    assert.deepEqual(await index.getCache('old'), cacheRecord('old', { public: true, compression: 'xz', createdAt: 5 }));
    assert.deepEqual(await index.listUpstreams('old'), []);
  });

  suiteTest('a second cache of the same name is an IndexConflictError and changes nothing', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main', { priority: 30 }));
    await assert.rejects(index.createCache(cacheRecord('main', { priority: 99 })), IndexConflictError);
    assert.equal((await index.getCache('main'))?.priority, 30);
  });

  suiteTest('deleting a cache deletes its keys, tokens, NARs, paths and references, and nothing else', async (ctx) => {
    const index = await ctx.open();
    const raw = await ctx.raw();
    for (const name of ['doomed', 'kept']) {
      await index.createCache(cacheRecord(name));
      await index.addKey(keyRecord(name, `${name}-1`));
      await index.createToken(tokenRecord(`${name}-token`, name));
      await index.putNar(narRecord(name, 'dep'));
      await index.putPath(pathRecord(name, 'dep'));
      await index.putPath(pathRecord(name, 'top', [hashPart('dep'), hashPart('top')]));
    }
    await index.createToken(tokenRecord('admin-token', null));
    for (const name of ['doomed', 'kept']) {
      await index.setUpstreams(name, [upstream('https://up.example')]);
      await index.recordUpstreamPresence({ cache: name, ...upstream('https://up.example') }, [
        { hashPart: hashPart('dep'), present: true, checkedAt: 1 },
      ]);
    }

    assert.equal(await countRows(raw, 'refs', 'doomed'), 2);
    assert.equal(await index.deleteCache('doomed'), true);

    for (const table of ['keys', 'tokens', 'nars', 'paths', 'refs', 'upstreams', 'upstream_presence']) {
      assert.equal(await countRows(raw, table, 'doomed'), 0, table);
    }
    assert.deepEqual(await index.listKeys('doomed'), []);
    assert.equal(await index.findTokenByHash(tokenRecord('doomed-token', 'doomed').hash), undefined);
    assert.equal(await index.getNar('doomed', narRecord('doomed', 'dep').fileHash), undefined);
    assert.equal(await index.getPath('doomed', hashPart('top')), undefined);

    assert.equal((await index.listKeys('kept')).length, 1);
    assert.deepEqual(
      (await index.listTokens()).map((tok) => tok.id),
      ['admin-token', 'kept-token'].sort(),
    );
    assert.deepEqual(await index.getPath('kept', hashPart('top')), pathRecord('kept', 'top', [hashPart('dep'), hashPart('top')].sort()));
    assert.equal(await countRows(raw, 'refs', 'kept'), 2);
    assert.equal((await index.listUpstreams('kept')).length, 1);
    assert.equal((await index.getUpstreamPresence('kept', [hashPart('dep')])).length, 1);
  });

  suiteTest('keys are added per cache, listed oldest first, and change state', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const older = keyRecord('main', 'main-1', { createdAt: 1 });
    const newer = keyRecord('main', 'main-2', { createdAt: 2, state: 'published' });
    await index.addKey(newer);
    await index.addKey(older);
    await index.addKey(keyRecord('other', 'main-1'));

    assert.deepEqual(await index.listKeys('main'), [older, newer]);
    await assert.rejects(index.addKey(keyRecord('main', 'main-1')), IndexConflictError);

    assert.equal(await index.setKeyState('main', 'main-1', 'retired'), true);
    assert.equal(await index.setKeyState('main', 'main-9', 'retired'), false);
    assert.deepEqual(await index.listKeys('main'), [{ ...older, state: 'retired' }, newer]);
    assert.equal((await index.listKeys('other'))[0]?.state, 'active', 'same key name in another cache is untouched');
    assert.deepEqual(await index.listKeys('nope'), []);
  });

  suiteTest('a key or token for a cache that does not exist is refused', async (ctx) => {
    const index = await ctx.open();
    await assert.rejects(index.addKey(keyRecord('nope', 'k-1')), /foreign key/i);
    await assert.rejects(index.createToken(tokenRecord('t', 'nope')), /foreign key/i);
  });

  suiteTest('tokens round-trip with expiry and revocation, are found by hash and listed per cache', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const admin = tokenRecord('a', null, { createdAt: 1 });
    const reader = tokenRecord('r', 'main', { createdAt: 2, expiresAt: 1_800_000_000_000 });
    const writer = tokenRecord('w', 'main', { createdAt: 3, permission: 'write', revokedAt: 1_750_000_000_000 });
    const elsewhere = tokenRecord('o', 'other', { createdAt: 4 });
    for (const token of [writer, admin, elsewhere, reader]) await index.createToken(token);

    assert.deepEqual(await index.findTokenByHash(reader.hash), reader);
    assert.deepEqual(await index.findTokenByHash(writer.hash), writer);
    assert.deepEqual(await index.findTokenByHash(admin.hash), admin);
    assert.equal(await index.findTokenByHash('0'.repeat(64)), undefined);

    assert.deepEqual(await index.listTokens(), [admin, reader, writer, elsewhere]);
    assert.deepEqual(await index.listTokens('main'), [reader, writer]);
    assert.deepEqual(await index.listTokens('nope'), []);

    assert.equal(await index.revokeToken('r', 1_760_000_000_000), true);
    assert.deepEqual(await index.findTokenByHash(reader.hash), { ...reader, revokedAt: 1_760_000_000_000 });
    assert.equal(await index.revokeToken('r', 1_770_000_000_000), false, 'already revoked: the first time stands');
    assert.equal((await index.findTokenByHash(reader.hash))?.revokedAt, 1_760_000_000_000);
    assert.equal(await index.revokeToken('w', 1_770_000_000_000), false);
    assert.equal(await index.revokeToken('nope', 1), false);

    await assert.rejects(index.createToken(tokenRecord('r', 'main', { hash: 'f'.repeat(64) })), IndexConflictError);
    await assert.rejects(index.createToken(tokenRecord('new-id', 'main', { hash: reader.hash })), IndexConflictError);
  });

  suiteTest('a NAR is recorded once: a second record of the same file is a no-op', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const nar = narRecord('main', 'big', { fileSize: 2 ** 40 + 1, narSize: 2 ** 50 + 3 });
    await index.putNar(nar);
    assert.deepEqual(await index.getNar('main', nar.fileHash), nar);

    await index.putNar({ ...nar, url: 'nar/elsewhere.nar.xz', fileSize: 1 });
    assert.deepEqual(await index.getNar('main', nar.fileHash), nar);

    assert.equal(await index.getNar('other', nar.fileHash), undefined);
    assert.equal(await index.getNar('main', 'x'.repeat(52)), undefined);
  });

  suiteTest('a path is stored with its references, self included, and a second put changes nothing', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const refs = [hashPart('self'), hashPart('libc'), hashPart('bash')];
    const path = pathRecord('main', 'self', [...refs, hashPart('libc')]);

    assert.equal(await index.putPath(path), true);
    assert.deepEqual(await index.getPath('main', path.hashPart), { ...path, references: [...refs].sort() });

    assert.equal(await index.putPath({ ...pathRecord('main', 'self', [hashPart('other')]), narinfo: 'changed' }), false);
    assert.deepEqual(await index.getPath('main', path.hashPart), { ...path, references: [...refs].sort() });

    assert.equal(await index.getPath('other', path.hashPart), undefined);
    assert.equal(await index.putPath(pathRecord('other', 'self')), true, 'the same path in another cache is its own');
    assert.deepEqual((await index.getPath('other', path.hashPart))?.references, []);
    assert.equal(await index.getPath('main', hashPart('absent')), undefined);
  });

  suiteTest('a path whose references fail to insert is not stored at all', async (ctx) => {
    const index = await ctx.open();
    const raw = await ctx.raw();
    await index.createCache(cacheRecord('main'));
    // NOT NULL fails on the refs insert, after the path row went in.
    const broken = pathRecord('main', 'p', [hashPart('a'), null as unknown as string]);

    await assert.rejects(index.putPath(broken), /not.null/i);
    assert.equal(await index.getPath('main', broken.hashPart), undefined);
    assert.equal(await countRows(raw, 'paths', 'main'), 0);
    assert.equal(await countRows(raw, 'refs', 'main'), 0);

    assert.equal(await index.putPath(pathRecord('main', 'p', [hashPart('a')])), true);
    assert.deepEqual((await index.getPath('main', broken.hashPart))?.references, [hashPart('a')]);
  });

  suiteTest('a path with more references than one INSERT takes keeps them all', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const refs = Array.from({ length: 700 }, (_, i) => hashPart(`ref-${i}`));
    assert.equal(await index.putPath(pathRecord('main', 'wide', refs)), true);
    assert.deepEqual((await index.getPath('main', hashPart('wide')))?.references, [...refs].sort());
  });

  suiteTest('presentPaths answers for thousands of hash parts at once', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const stored = Array.from({ length: 1000 }, (_, i) => hashPart(`stored-${i}`));
    const absent = Array.from({ length: 1000 }, (_, i) => hashPart(`absent-${i}`));
    for (let i = 0; i < stored.length; i++) await index.putPath(pathRecord('main', `stored-${i}`));
    await index.putPath(pathRecord('other', 'absent-7'));

    const asked = [...absent, ...stored].sort();
    assert.equal(asked.length, 2000);
    assert.deepEqual(await index.presentPaths('main', [...asked, stored[0] as string]), new Set(stored));
    assert.deepEqual(await index.presentPaths('other', asked), new Set([hashPart('absent-7')]));
    assert.deepEqual(await index.presentPaths('main', []), new Set());
    assert.deepEqual(await index.presentPaths('nope', stored), new Set());
  });

  suiteTest('reopening keeps the data and applies no migration twice', async (ctx) => {
    const first = await ctx.open();
    await first.createCache(cacheRecord('main'));
    await first.close();

    const second = await ctx.open();
    assert.deepEqual(await second.getCache('main'), cacheRecord('main'));
    const raw = await ctx.raw();
    await migrate(raw);
    const versions = await raw.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(
      versions.map((v) => v.version),
      MIGRATIONS.map((m) => m.version),
    );
  });

  suiteTest('a migration added later is applied once, on the next start', async (ctx) => {
    const raw = await ctx.raw();
    await migrate(raw);
    const next = MIGRATIONS.length + 1;
    const later = [...MIGRATIONS, { version: next, description: 'an extra table', sql: 'CREATE TABLE extra (x TEXT)' }];
    await migrate(raw, later);
    // Applying it again would fail: the table exists.
    await migrate(raw, later);
    assert.deepEqual(await raw.all('SELECT x FROM extra'), []);
    const row = await raw.get<{ description: string }>('SELECT description FROM schema_migrations WHERE version = ?', [next]);
    assert.equal(row?.description, 'an extra table');
  });

  suiteTest('a process that read the versions before another applied them finds the work done', async (ctx) => {
    const first = await ctx.raw();
    const second = await ctx.raw();
    await migrate(first);
    // The second process read schema_migrations before the first committed: it saw nothing.
    const staleSecond = stale(second);
    // Re-running migration 1 would fail: its tables exist.
    await migrate(staleSecond);
    const rows = await second.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(
      rows.map((r) => r.version),
      MIGRATIONS.map((m) => m.version),
    );
  });

  suiteTest('an index whose schema is newer than this larder is refused', async (ctx) => {
    const raw = await ctx.raw();
    await migrate(raw);
    await raw.run('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)', [999, 'future', 0]);
    await assert.rejects(ctx.open(), (error) => error instanceof SchemaTooNewError && /schema is at version 999, newer than this larder knows/.test(error.message));
  });

  suiteTest('two connections to one database see each other’s writes', async (ctx) => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.createCache(cacheRecord('main'));
    assert.deepEqual(await b.getCache('main'), cacheRecord('main'));
    assert.equal(await b.putPath(pathRecord('main', 'p', [hashPart('p')])), true);
    assert.deepEqual(await a.presentPaths('main', [hashPart('p'), hashPart('q')]), new Set([hashPart('p')]));
    assert.equal(await a.putPath(pathRecord('main', 'p')), false);
    assert.equal(await a.deleteCache('main'), true);
    assert.equal(await b.getPath('main', hashPart('p')), undefined);
  });

  suiteTest('worker processes starting at once on a fresh database all get a migrated index', async (ctx) => {
    const moduleUrl = new URL('../../src/index/open-index.ts', import.meta.url).href;
    const worker = `
      const [moduleUrl, config, name, startAt] = process.argv.slice(1);
      const { openIndex } = await import(moduleUrl);
      // Start together, so that they race on creating the schema.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));
      const index = await openIndex(JSON.parse(config));
      await index.createCache({ name, public: false, priority: 40, compression: 'zstd', mirror: false, createdAt: 0 });
      await index.close();
    `;
    const names = ['w0', 'w1', 'w2', 'w3', 'w4', 'w5'];
    const startAt = String(Date.now() + 1000);
    await Promise.all(
      names.map((name) =>
        promisify(execFile)(process.execPath, ['--input-type=module', '-e', worker, moduleUrl, JSON.stringify(ctx.config), name, startAt]),
      ),
    );

    const index = await ctx.open();
    assert.deepEqual(
      (await index.listCaches()).map((c) => c.name),
      names,
    );
    const raw = await ctx.raw();
    const rows = await raw.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(
      rows.map((r) => r.version),
      MIGRATIONS.map((m) => m.version),
    );
  });


  suiteTest('upstreams are listed by priority then URL, per cache, and replaced as a whole', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const b = upstream('https://b.example', { priority: 10 });
    const a = upstream('https://a.example', { priority: 10, publicKeys: ['k-1:x', 'k-2:y'] });
    const c = upstream('http://c.example/sub/cache', { priority: 5 });
    await index.setUpstreams('main', [b, a, c]);
    await index.setUpstreams('other', [upstream('https://b.example', { priority: 99 })]);

    assert.deepEqual(await index.listUpstreams('main'), [c, a, b].map((u) => ({ cache: 'main', ...u })));
    assert.deepEqual(await index.listUpstreams('other'), [{ cache: 'other', ...upstream('https://b.example', { priority: 99 }) }]);
    assert.deepEqual(await index.listUpstreams('nope'), []);

    await index.setUpstreams('main', [{ ...b, priority: 1 }]);
    assert.deepEqual(await index.listUpstreams('main'), [{ cache: 'main', ...b, priority: 1 }]);
    await index.setUpstreams('main', []);
    assert.deepEqual(await index.listUpstreams('main'), []);
    assert.equal((await index.listUpstreams('other')).length, 1, 'other caches are untouched');
  });

  suiteTest('an upstream listed twice or for a missing cache is refused, and nothing changes', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const a = upstream('https://a.example');
    await index.setUpstreams('main', [a]);
    await assert.rejects(index.setUpstreams('main', [upstream('https://b.example'), upstream('https://b.example')]), IndexConflictError);
    assert.deepEqual(await index.listUpstreams('main'), [{ cache: 'main', ...a }]);
    await assert.rejects(index.setUpstreams('nope', [a]), /foreign key/i);
  });

  suiteTest('presence answers are remembered per upstream, the latest winning, in batches of any size', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const [a, b] = [upstream('https://a.example'), upstream('https://b.example')];
    await index.setUpstreams('main', [a, b]);
    await index.setUpstreams('other', [a]);
    const many = Array.from({ length: 1000 }, (_, i) => ({ hashPart: hashPart(`p-${i}`), present: i % 2 === 0, checkedAt: i }));

    await index.recordUpstreamPresence({ cache: 'main', ...a }, [...many, { hashPart: hashPart('p-1'), present: true, checkedAt: 7777 }]);
    await index.recordUpstreamPresence({ cache: 'main', ...b }, [{ hashPart: hashPart('p-0'), present: false, checkedAt: 5 }]);
    const answers = await index.getUpstreamPresence('main', [hashPart('p-0'), hashPart('p-1'), hashPart('absent')]);
    const sorted = answers.sort((x, y) => (x.url + x.hashPart < y.url + y.hashPart ? -1 : 1));
    assert.deepEqual(
      sorted,
      [
        { url: a.url, hashPart: hashPart('p-0'), present: true, checkedAt: 0 },
        { url: a.url, hashPart: hashPart('p-1'), present: true, checkedAt: 7777 },
        { url: b.url, hashPart: hashPart('p-0'), present: false, checkedAt: 5 },
      ].sort((x, y) => (x.url + x.hashPart < y.url + y.hashPart ? -1 : 1)),
    );
    assert.equal((await index.getUpstreamPresence('main', many.map((m) => m.hashPart))).filter((r) => r.url === a.url).length, 1000);
    assert.deepEqual(await index.getUpstreamPresence('other', [hashPart('p-0')]), [], 'answers belong to one cache');

    await index.recordUpstreamPresence({ cache: 'main', ...a }, [{ hashPart: hashPart('p-0'), present: false, checkedAt: 9 }]);
    const again = await index.getUpstreamPresence('main', [hashPart('p-0')]);
    assert.deepEqual(again.find((r) => r.url === a.url), { url: a.url, hashPart: hashPart('p-0'), present: false, checkedAt: 9 });
    await index.recordUpstreamPresence({ cache: 'main', ...a }, []);
  });

  suiteTest('replacing upstreams keeps the answers of an upstream kept as it was, and drops the rest', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const [a, b, c] = [upstream('https://a.example'), upstream('https://b.example'), upstream('https://c.example')];
    await index.setUpstreams('main', [a, b, c]);
    for (const u of [a, b, c]) {
      await index.recordUpstreamPresence({ cache: 'main', ...u }, [{ hashPart: hashPart('p'), present: true, checkedAt: 1 }]);
    }
    const urls = async () => (await index.getUpstreamPresence('main', [hashPart('p')])).map((r) => r.url).sort();
    assert.deepEqual(await urls(), [a.url, b.url, c.url]);

    // a: new priority only; b: other keys; c: removed.
    const rekeyed = { ...b, publicKeys: ['other-1:key'] };
    await index.setUpstreams('main', [{ ...a, priority: 1 }, rekeyed]);
    assert.deepEqual(await urls(), [a.url]);
    assert.deepEqual(await index.listUpstreams('main'), [
      { cache: 'main', ...a, priority: 1 },
      { cache: 'main', ...rekeyed },
    ]);
  });

  suiteTest('an answer checked under keys since replaced, or for an upstream since removed, is dropped', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const a = upstream('https://a.example');
    await index.setUpstreams('main', [{ ...a, publicKeys: ['new-1:key'] }]);
    await index.recordUpstreamPresence({ cache: 'main', ...a }, [{ hashPart: hashPart('p'), present: true, checkedAt: 1 }]);
    assert.deepEqual(await index.getUpstreamPresence('main', [hashPart('p')]), []);
    await index.recordUpstreamPresence({ cache: 'main', ...upstream('https://gone.example') }, [
      { hashPart: hashPart('p'), present: true, checkedAt: 1 },
    ]);
    assert.deepEqual(await index.getUpstreamPresence('main', [hashPart('p')]), []);
  });

  suiteTest('a lease is exclusive until it expires, renewed by its holder, and free once released', async (ctx) => {
    const raw = await ctx.raw();
    await migrate(raw);
    let now = 1_700_000_000_000;
    const index = new SqlIndex(raw, { now: () => now });

    assert.equal(await index.acquireLease('gc', 'replica-a', 1000), true);
    assert.equal(await index.acquireLease('gc', 'replica-b', 1000), false, 'held by a');
    assert.equal(await index.acquireLease('verify', 'replica-b', 1000), true, 'leases are per name');

    now += 600;
    assert.equal(await index.acquireLease('gc', 'replica-a', 1000), true, 'a renews: now until +1600');
    now += 999;
    assert.equal(await index.acquireLease('gc', 'replica-b', 1000), false, 'renewed, so still held');
    now += 1;
    assert.equal(await index.acquireLease('gc', 'replica-b', 1000), true, 'expired: b takes it over');
    assert.equal(await index.acquireLease('gc', 'replica-a', 1000), false, 'a lost it');
    assert.equal(await index.releaseLease('gc', 'replica-a'), false, 'a cannot release what b holds');
    assert.equal(await index.acquireLease('gc', 'replica-a', 1000), false);

    assert.equal(await index.releaseLease('gc', 'replica-b'), true);
    assert.equal(await index.releaseLease('gc', 'replica-b'), false, 'released once');
    assert.equal(await index.acquireLease('gc', 'replica-a', 1000), true, 'free again at once');
    assert.equal(await index.releaseLease('nope', 'replica-a'), false);

    for (const ttl of [0, -1, 1.5, Number.NaN]) await assert.rejects(index.acquireLease('gc', 'replica-a', ttl), RangeError);
  });

  suiteTest('of holders racing for a free lease on separate connections, exactly one gets it', async (ctx) => {
    const contenders = await Promise.all(Array.from({ length: 6 }, () => ctx.open()));
    const won = await Promise.all(contenders.map((index, i) => index.acquireLease('gc', `replica-${i}`, 60_000)));
    assert.equal(won.filter(Boolean).length, 1, `winners: ${won}`);
    const winner = won.indexOf(true);
    const raw = await ctx.raw();
    assert.deepEqual({ ...(await raw.get<object>("SELECT holder FROM leases WHERE name = 'gc'")) }, { holder: `replica-${winner}` });
  });

  suiteTest('a lease expires by the clock: another holder takes it after its TTL', async (ctx) => {
    const [a, b] = [await ctx.open(), await ctx.open()];
    assert.equal(await a.acquireLease('gc', 'a', 40), true);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(await b.acquireLease('gc', 'b', 60_000), true);
    assert.equal(await a.acquireLease('gc', 'a', 40), false);
  });

  suiteTest('the index reports its dialect and schema version', async (ctx) => {
    const index = await ctx.open();
    assert.equal(index.dialect, backend.name);
    assert.equal(await index.schemaVersion(), Math.max(...MIGRATIONS.map((m) => m.version)));
    assert.equal(await index.schemaVersion(), 6);
  });

  suiteTest('migrate reports what it applied and the version reached', async (ctx) => {
    const raw = await ctx.raw();
    assert.deepEqual(await migrate(raw, MIGRATIONS.slice(0, 1)), { version: 1, applied: [1] });
    assert.deepEqual(await migrate(raw), { version: 6, applied: [2, 3, 4, 5, 6] });
    assert.deepEqual(await migrate(raw), { version: 6, applied: [] });
  });

  suiteTest('a cache of schema version 3 reads with no retention or quota; its paths have no recorded access', async (ctx) => {
    const raw = await ctx.raw();
    await migrate(raw, MIGRATIONS.filter((m) => m.version <= 3));
    await raw.run('INSERT INTO caches (name, is_public, priority, compression, created_at, mirror) VALUES (?, ?, ?, ?, ?, ?)', ['old', 0, 40, 'zstd', 5, 0]);
    for (const [seed, file] of [['p', 'f'], ['q', 'g']] as const) {
      await raw.run('INSERT INTO paths (cache, hash_part, base, file_hash, nar_size, narinfo, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
        'old', hashPart(seed), `${hashPart(seed)}-${seed}`, file.repeat(52), 10, 'x', 123,
      ]);
    }
    await raw.run('INSERT INTO nars (cache, file_hash, url, compression, file_size, nar_hash, nar_size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
      'old', 'f'.repeat(52), 'nar/x.nar', 'none', 77, 'sha256:x', 10, 1,
    ]);
    const index = await ctx.open();
    assert.deepEqual(await index.getCache('old'), cacheRecord('old', { createdAt: 5 }));
    assert.deepEqual(
      (await index.pathFactsPage('old', '', 10)).sort((a, b) => (a.fileHash < b.fileHash ? -1 : 1)),
      [
        { hashPart: hashPart('p'), fileHash: 'f'.repeat(52), narSize: 10, fileSize: 77, accessedAt: 123 },
        { hashPart: hashPart('q'), fileHash: 'g'.repeat(52), narSize: 10, fileSize: 0, accessedAt: 123 },
      ],
      'the NAR size is copied to the path by the migration (0 without a NAR record)',
    );
    assert.deepEqual(await index.listPins('old'), []);
  });

  suiteTest('retention and max-size are stored with the cache, and null removes them', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    assert.deepEqual(await index.updateCache('main', { retentionMs: 30 * 86_400_000, maxSize: 200 * 2 ** 30 }), cacheRecord('main', {
      retentionMs: 30 * 86_400_000,
      maxSize: 200 * 2 ** 30,
    }));
    assert.deepEqual(await index.updateCache('main', { retentionMs: null }), cacheRecord('main', { maxSize: 200 * 2 ** 30 }));
    assert.deepEqual(await index.updateCache('main', { maxSize: null, priority: 3 }), cacheRecord('main', { priority: 3 }));
  });

  suiteTest('accesses only move a path’s last access forwards, by hash part or by NAR', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const a = pathRecord('main', 'a');
    const b = pathRecord('main', 'b');
    await index.putPath(a);
    await index.putPath(b);
    const accessed = async () => new Map((await index.pathFactsPage('main', '', 10)).map((f) => [f.hashPart, f.accessedAt]));
    assert.deepEqual(await accessed(), new Map([[a.hashPart, a.createdAt], [b.hashPart, b.createdAt]]), 'the creation counts as an access');

    await index.touchPaths('main', [a.hashPart, hashPart('absent')], a.createdAt + 100);
    await index.touchPathsByNar('main', [b.fileHash], b.createdAt + 50);
    assert.deepEqual(await accessed(), new Map([[a.hashPart, a.createdAt + 100], [b.hashPart, b.createdAt + 50]]));
    await index.touchPaths('main', [a.hashPart, b.hashPart], a.createdAt + 70);
    assert.deepEqual(await accessed(), new Map([[a.hashPart, a.createdAt + 100], [b.hashPart, b.createdAt + 70]]), 'never backwards');
    await index.touchPaths('other', [a.hashPart], a.createdAt + 999);
    assert.equal((await accessed()).get(a.hashPart), a.createdAt + 100, 'per cache');
  });

  suiteTest('path facts and references come in pages that cover everything once, with NAR sizes', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const seeds = Array.from({ length: 23 }, (_, i) => `p${i}`);
    for (const [i, seed] of seeds.entries()) {
      await index.putNar(narRecord('main', seed, { fileSize: 1000 + i }));
      const refs = seeds.slice(0, i).filter((_, j) => j % 3 === 0).map(hashPart);
      await index.putPath(pathRecord('main', seed, [...refs, hashPart(seed)]));
    }
    const facts = [];
    for (let after = ''; ; ) {
      const page = await index.pathFactsPage('main', after, 4);
      facts.push(...page);
      if (page.length < 4) break;
      after = page.at(-1)!.hashPart;
    }
    assert.deepEqual(facts.map((f) => f.hashPart), seeds.map(hashPart).sort());
    const sizeOf = new Map(seeds.map((seed, i) => [hashPart(seed), 1000 + i]));
    for (const f of facts) assert.equal(f.fileSize, sizeOf.get(f.hashPart));

    const refs = [];
    for (let after: { hashPart: string; refHashPart: string } | undefined; ; ) {
      const page = await index.referencesPage('main', after, 5);
      refs.push(...page);
      if (page.length < 5) break;
      after = page.at(-1);
    }
    const expected = seeds.flatMap((seed, i) =>
      [...seeds.slice(0, i).filter((_, j) => j % 3 === 0).map(hashPart), hashPart(seed)].map((r) => `${hashPart(seed)} ${r}`),
    );
    assert.deepEqual(refs.map((r) => `${r.hashPart} ${r.refHashPart}`), expected.sort());
    assert.deepEqual(await index.sharedNars('main'), []);
    await index.putPath({ ...pathRecord('main', 'twin'), fileHash: pathRecord('main', 'p0').fileHash });
    assert.deepEqual(await index.sharedNars('main'), [pathRecord('main', 'p0').fileHash]);
  });

  suiteTest('putPath with requirements: the NAR and references must be there, else nothing is stored', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.putPath(pathRecord('main', 'dep'));
    const top = pathRecord('main', 'top', [hashPart('dep'), hashPart('gone'), hashPart('top')]);
    await assert.rejects(
      index.putPath(top, { nar: true, references: [hashPart('dep'), hashPart('gone'), hashPart('top')] }),
      (error) => error instanceof IndexPreconditionError && error.missingNar && error.missingPaths.join() === hashPart('gone'),
    );
    assert.equal(await index.getPath('main', top.hashPart), undefined);
    await index.putNar({ ...narRecord('main', 'top'), fileHash: top.fileHash });
    await assert.rejects(index.putPath(top, { nar: true, references: [hashPart('gone')] }), (error) =>
      error instanceof IndexPreconditionError && !error.missingNar,
    );
    assert.equal(await index.putPath(top, { nar: true, references: [hashPart('dep'), hashPart('top')] }), true, 'self is not required');
    assert.equal(await index.putPath(top, { nar: true, references: [hashPart('dep')] }), false);
  });

  suiteTest('a NAR claimed for deletion counts as absent; touching renews an unclaimed one', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const nar = narRecord('main', 'n', { createdAt: 1000 });
    await index.putNar(nar);
    assert.deepEqual(await index.touchNar('main', nar.fileHash, 5000), { ...nar, createdAt: 5000 });
    assert.deepEqual(await index.touchNar('main', nar.fileHash, 4000), { ...nar, createdAt: 5000 }, 'never backwards');
    assert.equal(await index.narDeleting('main', nar.fileHash), false);

    const rules = { createdBefore: 6000, staleClaimBefore: 0, at: 7000 };
    assert.deepEqual(await index.claimNars('main', [nar.fileHash], { ...rules, createdBefore: 5000 }), [], 'renewed: too young');
    assert.deepEqual(await index.claimNars('main', [nar.fileHash], rules), [{ fileHash: nar.fileHash, url: nar.url, fileSize: nar.fileSize }]);
    assert.equal(await index.narDeleting('main', nar.fileHash), true);
    assert.equal(await index.getNar('main', nar.fileHash), undefined);
    assert.equal(await index.touchNar('main', nar.fileHash, 8000), undefined);
    assert.deepEqual(await index.presentNars('main', [nar.fileHash, 'x'.repeat(52)]), new Set([nar.fileHash]));
    assert.deepEqual(await index.claimNars('main', [nar.fileHash], rules), [], 'claimed once');
    assert.equal((await index.claimNars('main', [nar.fileHash], { ...rules, staleClaimBefore: 7001, at: 9000 })).length, 1, 'a stale claim is taken over');

    await index.putNar({ ...nar, createdAt: 1 });
    assert.equal(await index.getNar('main', nar.fileHash), undefined, 'recording it again does not resurrect a claimed NAR');
    assert.equal(await index.dropClaimedNars('main', [nar.fileHash]), 1);
    assert.deepEqual(await index.presentNars('main', [nar.fileHash]), new Set());
    await index.putNar(nar);
    assert.deepEqual(await index.getNar('main', nar.fileHash), nar);
  });

  suiteTest('NARs a path uses are never claimed; orphans are listed by age, claims by staleness', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    const used = narRecord('main', 'used', { createdAt: 10 });
    const old = narRecord('main', 'old', { createdAt: 10 });
    const young = narRecord('main', 'young', { createdAt: 500 });
    for (const nar of [used, old, young]) await index.putNar(nar);
    await index.putPath({ ...pathRecord('main', 'p'), fileHash: used.fileHash });
    const rules = { createdBefore: 100, staleClaimBefore: 0, at: 1000 };
    assert.deepEqual((await index.orphanNarsPage('main', rules, '', 10)).map((n) => n.fileHash), [old.fileHash]);
    assert.deepEqual((await index.claimNars('main', [used.fileHash, old.fileHash, young.fileHash], rules)).map((c) => c.fileHash), [old.fileHash]);
    assert.equal(await index.narDeleting('main', used.fileHash), false);
    assert.deepEqual(await index.orphanNarsPage('main', rules, '', 10), [], 'claimed: not listed until stale');
    assert.deepEqual((await index.orphanNarsPage('main', { ...rules, staleClaimBefore: 1001 }, '', 10)).map((n) => n.fileHash), [old.fileHash]);
  });

  suiteTest('pins name paths of the cache, are replaced by name, listed by name and deleted', async (ctx) => {
    const index = await ctx.open();
    await index.createCache(cacheRecord('main'));
    await index.createCache(cacheRecord('other'));
    const [a, b] = [pathRecord('main', 'a'), pathRecord('main', 'b')];
    await index.putPath(a);
    await index.putPath(b);
    await assert.rejects(index.putPin('main', 'x', hashPart('absent'), 1), IndexPreconditionError);
    await assert.rejects(index.putPin('other', 'x', a.hashPart, 1), IndexPreconditionError, 'per cache');
    assert.deepEqual(await index.putPin('main', 'zeta', a.hashPart, 1), { cache: 'main', name: 'zeta', hashPart: a.hashPart, base: a.base, createdAt: 1 });
    await index.putPin('main', 'alpha', a.hashPart, 2);
    await index.putPin('main', 'zeta', b.hashPart, 3);
    assert.deepEqual(await index.listPins('main'), [
      { cache: 'main', name: 'alpha', hashPart: a.hashPart, base: a.base, createdAt: 2 },
      { cache: 'main', name: 'zeta', hashPart: b.hashPart, base: b.base, createdAt: 3 },
    ]);
    assert.equal(await index.deletePin('main', 'alpha'), true);
    assert.equal(await index.deletePin('main', 'alpha'), false);
    assert.deepEqual((await index.listPins('main')).map((p) => p.name), ['zeta']);
    assert.deepEqual(await index.listPins('other'), []);
  });

  suiteTest('deletePaths deletes a closure referrers and all, spares what changed, and bumps the generation', async (ctx) => {
    const index = await ctx.open();
    const raw = await ctx.raw();
    await index.createCache(cacheRecord('main'));
    // lib ← bin ← app; lib ← other (not a candidate); pinned; touched.
    const lib = pathRecord('main', 'lib', [hashPart('lib')]);
    const bin = pathRecord('main', 'bin', [hashPart('lib')]);
    const app = pathRecord('main', 'app', [hashPart('bin'), hashPart('lib')]);
    const other = pathRecord('main', 'other', [hashPart('lib')]);
    const pinned = pathRecord('main', 'pinned');
    const touched = pathRecord('main', 'touched');
    for (const p of [lib, bin, app, other, pinned, touched]) await index.putPath(p);
    await index.putPin('main', 'keep', pinned.hashPart, 1);
    await index.touchPaths('main', [touched.hashPart], touched.createdAt + 10);

    const result = await index.deletePaths('main', [
      { hashPart: app.hashPart, accessedAt: app.createdAt },
      { hashPart: bin.hashPart },
      { hashPart: lib.hashPart },
      { hashPart: pinned.hashPart },
      { hashPart: touched.hashPart, accessedAt: touched.createdAt },
      { hashPart: hashPart('absent') },
    ]);
    assert.deepEqual(
      result.deleted.map((d) => d.base).sort(),
      [app.base, bin.base].sort(),
    );
    assert.deepEqual(result.deleted.find((d) => d.hashPart === app.hashPart), { hashPart: app.hashPart, base: app.base, fileHash: app.fileHash, narSize: app.narSize });
    assert.deepEqual(
      [...result.spared].sort((x, y) => (x.hashPart < y.hashPart ? -1 : 1)),
      [
        { hashPart: lib.hashPart, reason: 'referenced', by: other.hashPart },
        { hashPart: pinned.hashPart, reason: 'pinned', by: 'keep' },
        { hashPart: touched.hashPart, reason: 'accessed' },
        { hashPart: hashPart('absent'), reason: 'absent' },
      ].sort((x, y) => (x.hashPart < y.hashPart ? -1 : 1)),
    );
    assert.equal(await index.getPath('main', app.hashPart), undefined);
    assert.ok(await index.getPath('main', lib.hashPart));
    assert.equal((await raw.get<{ n: number }>('SELECT count(*) AS n FROM refs WHERE cache = ? AND hash_part = ?', ['main', app.hashPart]))?.n, 0);
    assert.equal((await index.getCache('main'))?.generation, 1);

    const both = await index.deletePaths('main', [{ hashPart: lib.hashPart }, { hashPart: other.hashPart }], { allOrNothing: true });
    assert.deepEqual(both.deleted.map((d) => d.base).sort(), [lib.base, other.base].sort(), 'other refers to lib, both go');
    assert.deepEqual(both.spared, []);
    assert.equal((await index.getCache('main'))?.generation, 2);
    assert.deepEqual(await index.referrers('main', [lib.hashPart]), []);

    const refused = await index.deletePaths('main', [{ hashPart: pinned.hashPart }, { hashPart: touched.hashPart }], { allOrNothing: true });
    assert.deepEqual(refused.deleted, []);
    assert.ok(await index.getPath('main', touched.hashPart), 'all or nothing: nothing');
    assert.equal((await index.getCache('main'))?.generation, 2, 'nothing deleted, no new generation');
  });

  suiteTest('a path committed while its reference is deleted: never the path without its reference', async (ctx) => {
    const [pusher, collector] = [await ctx.open(), await ctx.open()];
    await pusher.createCache(cacheRecord('main'));
    for (let round = 0; round < 15; round++) {
      const dep = pathRecord('main', `dep-${round}`);
      await pusher.putPath(dep);
      await pusher.putNar({ ...narRecord('main', `top-${round}`), fileHash: pathRecord('main', `top-${round}`).fileHash });
      const top = pathRecord('main', `top-${round}`, [dep.hashPart]);
      const [pushed] = await Promise.allSettled([
        pusher.putPath(top, { nar: true, references: [dep.hashPart] }),
        collector.deletePaths('main', [{ hashPart: dep.hashPart }]),
      ]);
      const topThere = (await pusher.getPath('main', top.hashPart)) !== undefined;
      const depThere = (await pusher.getPath('main', dep.hashPart)) !== undefined;
      assert.ok(!topThere || depThere, `round ${round}: ${top.base} visible without ${dep.base}`);
      if (pushed.status === 'rejected') assert.ok(pushed.reason instanceof IndexPreconditionError, String(pushed.reason));
    }
  });

  suiteTest('a path committed while its NAR is claimed: never the path without its NAR', async (ctx) => {
    const [pusher, collector] = [await ctx.open(), await ctx.open()];
    await pusher.createCache(cacheRecord('main'));
    for (let round = 0; round < 15; round++) {
      const path = pathRecord('main', `p-${round}`);
      await pusher.putNar({ ...narRecord('main', `p-${round}`, { createdAt: 1 }), fileHash: path.fileHash });
      const [, claimed] = await Promise.allSettled([
        pusher.putPath(path, { nar: true }),
        collector.claimNars('main', [path.fileHash], { createdBefore: 100, staleClaimBefore: 0, at: 200 }),
      ]);
      const pathThere = (await pusher.getPath('main', path.hashPart)) !== undefined;
      const claims = claimed.status === 'fulfilled' ? claimed.value : [];
      assert.ok(!(pathThere && claims.length > 0), `round ${round}: a NAR in use was claimed`);
      assert.ok(pathThere || claims.length > 0, `round ${round}: one of the two must win`);
    }
  });
}
