import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatBytes, formatDurationValue, formatSizeValue, parseDurationValue, parseSizeValue } from '../../src/services/units.ts';

test('durations and sizes as people write them', () => {
  assert.equal(parseDurationValue('30d'), 30 * 86_400_000);
  assert.equal(parseDurationValue('1.5h'), 5_400_000);
  assert.equal(parseDurationValue(' 2w '), 14 * 86_400_000);
  for (const bad of ['30', 'd', '-1d', '0s', 30, null, '1y']) assert.equal(parseDurationValue(bad), undefined, String(bad));
  assert.equal(formatDurationValue(30 * 86_400_000), '30d');
  assert.equal(formatDurationValue(36 * 3_600_000), '36h');
  assert.equal(formatDurationValue(1500), '1500ms');
  assert.equal(parseSizeValue('200GiB'), 200 * 2 ** 30);
  assert.equal(parseSizeValue(1234), 1234);
  for (const bad of ['big', 0, -5, '0B', 1.5]) assert.equal(parseSizeValue(bad), undefined, String(bad));
  assert.equal(formatSizeValue(200 * 2 ** 30), '200GiB');
  assert.equal(formatSizeValue(1.5e9), '1500MB');
  assert.equal(formatSizeValue(1234), '1234B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(12), '12 B');
});

test('formatting a duration or size parses back to the same amount', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 45 }), (n) => {
    assert.equal(parseDurationValue(formatDurationValue(n)), n);
    assert.equal(parseSizeValue(formatSizeValue(n)), n);
  }));
});
