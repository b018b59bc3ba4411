// What the search box means.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSearchQuery } from '../../src/dashboard/search-query.ts';

const hash = '0c7a1f3kx1q9zv3m8gbyd7i6gq2dvrq4';

test('a whole store path, basename or hash names one path', () => {
  for (const input of [hash, `${hash}-hello-2.12`, `/nix/store/${hash}-hello-2.12`, `/nix/store/${hash}-hello-2.12/bin/hello`, `  ${hash}  `]) {
    assert.deepEqual(parseSearchQuery(input, '/nix/store'), { kind: 'exact', hashPart: hash }, input);
  }
  assert.deepEqual(parseSearchQuery(`/gnu/store/${hash}-x`, '/gnu/store'), { kind: 'exact', hashPart: hash });
});

test('nix32 text shorter than a hash may be the start of one or part of a name; other text is part of a name, lower-cased', () => {
  assert.deepEqual(parseSearchQuery('0c7a', '/nix/store'), { kind: 'match', hashPrefix: '0c7a', nameNeedle: '0c7a' });
  assert.deepEqual(parseSearchQuery('hello', '/nix/store'), { kind: 'match', nameNeedle: 'hello' }, "'e' and 'o' are not nix32");
  assert.deepEqual(parseSearchQuery('Python3-3.12', '/nix/store'), { kind: 'match', nameNeedle: 'python3-3.12' });
  assert.deepEqual(parseSearchQuery(`${hash}x`, '/nix/store'), { kind: 'match', nameNeedle: `${hash}x` }, 'too long for a hash');
  assert.deepEqual(parseSearchQuery('100%_', '/nix/store'), { kind: 'match', nameNeedle: '100%_' });
});

test('empty, overlong and control-character searches', () => {
  assert.deepEqual(parseSearchQuery('   ', '/nix/store'), { kind: 'empty' });
  assert.deepEqual(parseSearchQuery(null, '/nix/store'), { kind: 'empty' });
  assert.match((parseSearchQuery('x'.repeat(201), '/nix/store') as { problem: string }).problem, /201 characters long; at most 200/);
  assert.equal(parseSearchQuery('a\u0000b', '/nix/store').kind, 'invalid');
});
