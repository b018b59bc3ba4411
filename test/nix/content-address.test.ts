import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatContentAddress, parseContentAddress } from '../../src/nix/content-address.ts';

const h = '06p0y2qyrvvf97rlj62alpq6c2674ifrd5zv01ck3lq22hgfbcwk';

test('parses and re-renders each method', () => {
  const cases: Array<[string, string]> = [
    [`text:sha256:${h}`, 'text'],
    [`fixed:sha256:${h}`, 'flat'],
    [`fixed:r:sha256:${h}`, 'nar'],
    ['fixed:git:sha1:' + '0'.repeat(40), 'git'],
  ];
  for (const [text, method] of cases) {
    const ca = parseContentAddress(text);
    assert.equal(ca.method, method);
    assert.equal(formatContentAddress(ca), text.replace('0'.repeat(40), '0'.repeat(32)));
  }
});

test('re-renders other digest encodings as nix32', () => {
  const hex = Buffer.alloc(32, 1).toString('hex');
  assert.match(formatContentAddress(parseContentAddress(`fixed:r:sha256:${hex}`)), /^fixed:r:sha256:[0-9a-z]{52}$/);
});

test('refuses unknown methods and bad hashes', () => {
  assert.throws(() => parseContentAddress(`source:sha256:${h}`), /must start with/);
  assert.throws(() => parseContentAddress('text:sha256:xyz'), /has 3 characters/);
  assert.throws(() => parseContentAddress('text:sha1:' + '0'.repeat(40)), /text hashes must be sha256/);
});
