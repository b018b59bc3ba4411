import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRange } from '../../src/server/range.ts';

test('single byte ranges as curl sends them when resuming', () => {
  assert.deepEqual(parseRange(undefined, 100), { kind: 'whole' });
  assert.deepEqual(parseRange('bytes=10-19', 100), { kind: 'range', range: { start: 10, end: 19 } });
  assert.deepEqual(parseRange('bytes=90-', 100), { kind: 'range', range: { start: 90, end: 99 } });
  assert.deepEqual(parseRange('bytes=90-500', 100), { kind: 'range', range: { start: 90, end: 99 } });
  assert.deepEqual(parseRange('bytes=-10', 100), { kind: 'range', range: { start: 90, end: 99 } });
  assert.deepEqual(parseRange('bytes=-1000', 100), { kind: 'range', range: { start: 0, end: 99 } });
});

test('unsatisfiable and ignored ranges', () => {
  assert.deepEqual(parseRange('bytes=100-', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=-0', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=0-1,5-6', 100), { kind: 'whole' });
  assert.deepEqual(parseRange('items=0-1', 100), { kind: 'whole' });
  assert.deepEqual(parseRange('bytes=20-10', 100), { kind: 'whole' });
  assert.deepEqual(parseRange('bytes=-', 100), { kind: 'whole' });
});
