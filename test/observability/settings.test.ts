// The metrics and log settings: defaults, each source, and a clear refusal of
// a value that is not one of the words.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, resolveConfig } from '../../src/config/config.ts';

test('metrics are open and the log is JSON at info unless configured otherwise', () => {
  const config = resolveConfig({});
  assert.deepEqual(config.metrics, { access: 'public' });
  assert.deepEqual(config.log, { level: 'info', format: 'json' });
});

test('larder.toml tables and LARDER_* variables set them; variables win', () => {
  const file = { path: 'larder.toml', values: { metrics: { access: 'admin' }, log: { level: 'warn', format: 'text' } } };
  assert.deepEqual(resolveConfig({ file }).metrics, { access: 'admin' });
  assert.deepEqual(resolveConfig({ file }).log, { level: 'warn', format: 'text' });
  const env = { LARDER_METRICS_ACCESS: 'off', LARDER_LOG_LEVEL: 'silent' };
  assert.deepEqual(resolveConfig({ file, env }).metrics, { access: 'off' });
  assert.deepEqual(resolveConfig({ file, env }).log, { level: 'silent', format: 'text' });
});

test('a value outside the words is refused, naming the source, the setting and the choices', () => {
  assert.throws(() => resolveConfig({ env: { LARDER_METRICS_ACCESS: 'open' } }), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.message, 'LARDER_METRICS_ACCESS: expected one of public, admin, off, got "open"');
    return true;
  });
  assert.throws(
    () => resolveConfig({ file: { path: '/etc/larder/larder.toml', values: { log: { format: 'pretty' } } } }),
    /^ConfigError: \/etc\/larder\/larder\.toml: log\.format: expected one of json, text, got "pretty"$/,
  );
  assert.throws(() => resolveConfig({ file: { path: 'l.toml', values: { log: { colour: true } } } }), /unknown setting 'log\.colour'/);
});
