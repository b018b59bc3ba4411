import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { openIndex } from '../../src/index/open-index.ts';
import { larder } from '../helpers/larder-cli.ts';
import { postgresService } from '../helpers/postgres-service.ts';
import { closedPort } from '../index/tcp-proxy.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-migrate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The environment without LARDER_* settings of the caller's. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LARDER_')));
  return { ...env, ...extra };
}

test('larder migrate creates and migrates the embedded SQLite index, then finds it up to date', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  assert.equal(await larder(['migrate', '--data', data], cleanEnv()), `SQLite index ${data}/index.sqlite: schema version 6 (applied 1, 2, 3, 4, 5, 6)\n`);
  assert.equal(await larder(['migrate', '--data', data], cleanEnv()), `SQLite index ${data}/index.sqlite: schema version 6 (up to date)\n`);
  const index = await openIndex({ type: 'sqlite', path: join(data, 'index.sqlite') });
  t.after(() => index.close());
  assert.equal(await index.schemaVersion(), 6);
});

test('larder migrate --config migrates the PostgreSQL index the file names, without printing its password', async (t) => {
  const url = await postgresService(t);
  if (!url) return;
  const dir = await tempDir(t);
  const withPassword = new URL(url);
  withPassword.password = 'not-needed-with-trust';
  const config = join(dir, 'larder.toml');
  await writeFile(config, `[index]\ntype = "postgres"\nurl = "${withPassword.href}"\n`);
  const first = await larder(['migrate', '--config', config], cleanEnv());
  assert.match(first, /^PostgreSQL index postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/larder_test_\w+: schema version 6 \(applied 1, 2, 3, 4, 5, 6\)\n$/);
  assert.match(await larder(['migrate', '--config', config], cleanEnv()), /schema version 6 \(up to date\)\n$/);
});

test('larder migrate with an unreachable database says so in one line and exits 1', async () => {
  const url = `postgres://postgres:secret@127.0.0.1:${await closedPort()}/larder`;
  const failure = await larder(['migrate'], cleanEnv({ LARDER_INDEX_TYPE: 'postgres', LARDER_INDEX_URL: url })).then(
    () => assert.fail('migrate succeeded'),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(failure.code, 1);
  assert.match(failure.stderr, /^larder: PostgreSQL index postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/larder is unavailable: connect ECONNREFUSED/);
  assert.doesNotMatch(failure.stderr, /secret/);
  assert.equal(failure.stderr.trim().split('\n').length, 1);
});
