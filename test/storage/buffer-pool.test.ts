import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool } from '../../src/storage/buffer-pool.ts';

test('a pool hands out whole buffers of its size, reuses what comes back, and keeps no more than asked', () => {
  const pool = new BufferPool(1024, 2);
  const [a, b, c] = [pool.take(), pool.take(), pool.take()];
  for (const buffer of [a, b, c]) {
    assert.equal(buffer.length, 1024);
    assert.equal(buffer.buffer.byteLength, 1024, 'an ArrayBuffer of its own, transferable');
  }
  pool.give(a);
  pool.give(b);
  pool.give(c); // over the limit: dropped
  const again = new Set([pool.take(), pool.take()]);
  assert.deepEqual(again, new Set([a, b]));
  assert.ok(![a, b, c].includes(pool.take()), 'a third is new');
});

test('buffers of another size, or views of part of one, are not kept', () => {
  const pool = new BufferPool(1024, 4);
  const whole = pool.take();
  pool.give(Buffer.allocUnsafeSlow(512));
  pool.give(whole.subarray(0, 512));
  pool.give(Buffer.from(whole.buffer, 0, 1024)); // the same memory as a new view (as a transfer gives it back): kept
  const taken = pool.take();
  assert.equal(taken.buffer, whole.buffer);
  assert.notEqual(pool.take().buffer, whole.buffer);
});
