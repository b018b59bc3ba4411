import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatCacheInfo, parseCacheInfo } from '../../src/nix/cache-info.ts';

test('formats and parses nix-cache-info', () => {
  const text = formatCacheInfo({ storeDir: '/nix/store', wantMassQuery: true, priority: 40 });
  assert.equal(text, 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n');
  assert.deepEqual(parseCacheInfo(text), { storeDir: '/nix/store', wantMassQuery: true, priority: 40 });
});

test('parses as Nix does: lines without a colon and unknown keys ignored, values trimmed', () => {
  assert.deepEqual(parseCacheInfo('junk\nStoreDir:   /nix/store  \nFoo: bar\n'), { storeDir: '/nix/store', wantMassQuery: false });
  assert.throws(() => parseCacheInfo('Priority: high\n'), /Priority 'high' is not an integer/);
});
