import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseListen, parseSize, resolveConfig } from '../../src/config/config.ts';

test('defaults, then file, then environment, then flags', () => {
  const base = resolveConfig({});
  assert.deepEqual(base.listen, { host: '127.0.0.1', port: 8080 });
  assert.equal(base.dataDir, './larder-data');
  assert.equal(base.workers, 1);
  const file = { path: 'larder.toml', values: { listen: '0.0.0.0:9000', workers: 2, 'max-nar-size': '1GiB' } };
  const fromFile = resolveConfig({ file });
  assert.deepEqual(fromFile.listen, { host: '0.0.0.0', port: 9000 });
  assert.equal(fromFile.maxNarSize, 2 ** 30);
  const fromEnv = resolveConfig({ file, env: { LARDER_WORKERS: '3', LARDER_DATA_DIR: '/srv/larder' } });
  assert.equal(fromEnv.workers, 3);
  assert.equal(fromEnv.dataDir, '/srv/larder');
  const fromFlags = resolveConfig({ file, env: { LARDER_WORKERS: '3' }, flags: { workers: '4', listen: '[::1]:7000' } });
  assert.equal(fromFlags.workers, 4);
  assert.deepEqual(fromFlags.listen, { host: '::1', port: 7000 });
});

test('every problem names its source and field', () => {
  assert.throws(() => resolveConfig({ file: { path: 'l.toml', values: { wrokers: 2 } } }), /l\.toml: unknown setting 'wrokers'/);
  assert.throws(() => resolveConfig({ env: { LARDER_WORKERS: 'many' } }), (e: unknown) => e instanceof ConfigError && /^LARDER_WORKERS: expected a whole number/.test(e.message));
  assert.throws(() => resolveConfig({ flags: { listen: 'localhost' } }), { message: /^--listen: expected HOST:PORT/ });
  assert.throws(() => resolveConfig({ file: { path: 'l.toml', values: { 'max-nar-size': 'huge' } } }), { message: /^l\.toml: max-nar-size: expected a size/ });
  assert.throws(() => resolveConfig({ env: { LARDER_PUBLIC_URL: 'ftp://x' } }), { message: /^LARDER_PUBLIC_URL: expected an http\(s\) URL/ });
});

test('sizes and listen addresses', () => {
  assert.equal(parseSize('512MiB', 'x'), 512 * 2 ** 20);
  assert.equal(parseSize('1.5GB', 'x'), 1.5e9);
  assert.equal(parseSize(4096, 'x'), 4096);
  assert.throws(() => parseSize(0, 'x'));
  assert.deepEqual(parseListen(':8080', 'x'), { host: '0.0.0.0', port: 8080 });
  assert.throws(() => parseListen('127.0.0.1:70000', 'x'));
});

test('storage and index tables, from larder.toml and LARDER_<TABLE>_<KEY>', () => {
  const embedded = resolveConfig({ flags: { 'data-dir': '/srv/l' } });
  assert.deepEqual(embedded.storage, { type: 'filesystem', path: '/srv/l/store' });
  assert.deepEqual(embedded.index, { type: 'sqlite', path: '/srv/l/index.sqlite' });
  const file = {
    path: 'larder.toml',
    values: {
      storage: { type: 's3', endpoint: 'http://127.0.0.1:8080', bucket: 'nix', prefix: '/team/', 'path-style': true },
      index: { type: 'postgres', url: 'postgres://larder@db/larder' },
    },
  };
  const scaled = resolveConfig({ file, env: { LARDER_STORAGE_REGION: 'eu-central-1', LARDER_STORAGE_ACCESS_KEY_ID: 'AK', LARDER_STORAGE_SECRET_ACCESS_KEY: 'SK' } });
  assert.deepEqual(scaled.storage, {
    type: 's3',
    endpoint: 'http://127.0.0.1:8080',
    region: 'eu-central-1',
    bucket: 'nix',
    prefix: 'team',
    pathStyle: true,
    accessKeyId: 'AK',
    secretAccessKey: 'SK',
    storageClass: undefined,
  });
  assert.deepEqual(scaled.index, { type: 'postgres', url: 'postgres://larder@db/larder' });
  assert.throws(() => resolveConfig({ env: { LARDER_STORAGE_TYPE: 's3' } }), { message: /^storage\.bucket \(LARDER_STORAGE_BUCKET\) is required/ });
  assert.throws(() => resolveConfig({ env: { LARDER_INDEX_TYPE: 'mysql' } }), { message: /^LARDER_INDEX_TYPE: expected one of sqlite, postgres/ });
  assert.throws(
    () => resolveConfig({ env: { LARDER_STORAGE_TYPE: 's3', LARDER_STORAGE_BUCKET: 'b', LARDER_STORAGE_ACCESS_KEY_ID: 'AK' } }),
    { message: /go together/ },
  );
  assert.throws(() => resolveConfig({ file: { path: 'l.toml', values: { storage: { buckett: 'x' } } } }), { message: /unknown setting 'storage\.buckett'/ });
});

test('the [gc] table: the schedule (off disables it) and the upload grace period', () => {
  assert.deepEqual(resolveConfig({}).gc, { intervalMs: 3_600_000, uploadGraceMs: 3_600_000 });
  const file = { path: 'larder.toml', values: { gc: { interval: '15m', 'upload-grace': '2h' } } };
  assert.deepEqual(resolveConfig({ file }).gc, { intervalMs: 900_000, uploadGraceMs: 7_200_000 });
  assert.deepEqual(resolveConfig({ file, env: { LARDER_GC_INTERVAL: 'off' } }).gc, { intervalMs: null, uploadGraceMs: 7_200_000 });
  assert.throws(() => resolveConfig({ env: { LARDER_GC_INTERVAL: 'hourly' } }), { message: /^LARDER_GC_INTERVAL: expected a duration such as "10m" or "1h", or "off"/ });
  assert.throws(() => resolveConfig({ file: { path: 'l.toml', values: { gc: { 'upload-grace': 5 } } } }), { message: /^l\.toml: gc\.upload-grace: expected a duration/ });
});
