import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatHash, hashEquals, HASH_SIZES, parseHash, sha256, type HashAlgorithm, type HashEncoding } from '../../src/nix/hash.ts';

const abc = createHash('sha256').update('abc').digest();

test('every spelling of sha256("abc") parses to the same digest', () => {
  const spellings = [
    'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s',
    `sha256:${abc.toString('hex')}`,
    `sha256:${abc.toString('hex').toUpperCase()}`,
    `sha256:${abc.toString('base64')}`,
    `sha256-${abc.toString('base64')}`,
  ];
  for (const text of spellings) {
    const hash = parseHash(text);
    assert.equal(hash.algorithm, 'sha256', text);
    assert.deepEqual(hash.digest, abc, text);
  }
});

test('formats as Nix writes it: sha256:<nix32>', () => {
  assert.equal(formatHash(sha256('abc')), 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s');
  assert.equal(formatHash(sha256('abc'), 'sri'), `sha256-${abc.toString('base64')}`);
});

test('refuses bare digests, unknown algorithms, wrong lengths and junk', () => {
  const cases: Array<[string, RegExp]> = [
    ['1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s', /no algorithm prefix/],
    ['sha257:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s', /unknown hash algorithm 'sha257'/],
    ['sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5', /has 51 characters/],
    ['sha256:' + 'g'.repeat(64), /invalid base16/],
    ['sha256:' + '!'.repeat(44), /invalid base64/],
    ['sha256-' + 'A'.repeat(10), /invalid base64/],
    ['sha256:e' + '0'.repeat(51), /invalid nix32 character/],
  ];
  for (const [text, message] of cases) assert.throws(() => parseHash(text), message, text);
});

test('property: every algorithm and encoding round-trips', () => {
  const algorithms = Object.keys(HASH_SIZES) as HashAlgorithm[];
  const encodings: HashEncoding[] = ['nix32', 'base16', 'base64', 'sri'];
  fc.assert(
    fc.property(fc.constantFrom(...algorithms), fc.constantFrom(...encodings), fc.uint8Array({ minLength: 64, maxLength: 64 }), (algorithm, encoding, bytes) => {
      const hash = { algorithm, digest: Buffer.from(bytes.subarray(0, HASH_SIZES[algorithm])) };
      assert.ok(hashEquals(parseHash(formatHash(hash, encoding)), hash));
    }),
    { numRuns: 2000 },
  );
});
