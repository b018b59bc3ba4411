import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeNix32, encodeNix32, isNix32, nix32Length } from '../../src/nix/nix32.ts';

test('sha256("abc") has the nix32 spelling from the protocol reference', () => {
  const digest = createHash('sha256').update('abc').digest();
  assert.equal(encodeNix32(digest), '1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s');
  assert.deepEqual(decodeNix32('1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s', 32), digest);
});

test('lengths: 32 characters for 20 bytes, 52 for 32, 103 for 64', () => {
  assert.equal(nix32Length(20), 32);
  assert.equal(nix32Length(32), 52);
  assert.equal(nix32Length(64), 103);
  assert.equal(encodeNix32(Buffer.alloc(20)), '0'.repeat(32));
});

test('decoding refuses characters outside the alphabet', () => {
  for (const bad of ['e', 'o', 'u', 't', 'A', '-', 'é']) {
    const text = bad + '0'.repeat(51);
    assert.throws(() => decodeNix32(text, 32), /invalid nix32 character/);
    assert.equal(isNix32(text), false);
  }
});

test('decoding refuses bits beyond the byte length', () => {
  // The first character carries the top bits: for 32 bytes only 256 - 255 = 1 bit of it fits.
  assert.throws(() => decodeNix32('2' + '0'.repeat(51), 32), /bits beyond 32 bytes/);
  assert.deepEqual(decodeNix32('1' + '0'.repeat(51), 32)[31], 0x80);
});

test('decoding refuses a length that does not match', () => {
  assert.throws(() => decodeNix32('0'.repeat(51), 32), /cannot hold 32 bytes/);
});

test('property: decode(encode(bytes)) = bytes for any length', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 80 }), (bytes) => {
      const text = encodeNix32(bytes);
      assert.equal(text.length, nix32Length(bytes.length));
      assert.ok(isNix32(text));
      assert.deepEqual(decodeNix32(text, bytes.length), Buffer.from(bytes));
    }),
    { numRuns: 2000 },
  );
});
