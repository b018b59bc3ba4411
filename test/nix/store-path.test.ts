import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStorePath, parseStorePathBase, printStorePath, storePathNameProblem } from '../../src/nix/store-path.ts';

const base = 'xwcj2425qhak961159fdhpd5v35ihakr-b.txt';

test('parses a store path into hash part and name, and prints it back', () => {
  const path = parseStorePath(`/nix/store/${base}`);
  assert.deepEqual(path, { hashPart: 'xwcj2425qhak961159fdhpd5v35ihakr', name: 'b.txt' });
  assert.equal(printStorePath(path), `/nix/store/${base}`);
  assert.equal(printStorePath(parseStorePath(`/custom/store/${base}`, '/custom/store'), '/custom/store'), `/custom/store/${base}`);
});

test('refuses paths outside the store, files inside store paths and bad hash parts', () => {
  assert.throws(() => parseStorePath(`/tmp/${base}`), /not in the store directory/);
  assert.throws(() => parseStorePath(`/nix/store/${base}/bin/sh`), /file inside one/);
  assert.throws(() => parseStorePathBase('xwcj2425qhak961159fdhpd5v35ihake-b.txt'), /not a store path basename/);
  assert.throws(() => parseStorePathBase('xwcj2425qhak961159fdhpd5v35ihak-b.txt'), /not a store path basename/);
  assert.throws(() => parseStorePathBase('xwcj2425qhak961159fdhpd5v35ihakr_b.txt'), /not a store path basename/);
});

test('name rules: allowed characters, length, reserved names', () => {
  assert.equal(storePathNameProblem('hello-2.12.1+x_y?=z'), undefined);
  assert.equal(storePathNameProblem('a'.repeat(211)), undefined);
  assert.match(storePathNameProblem('a'.repeat(212))!, /longer than 211/);
  assert.match(storePathNameProblem('')!, /empty/);
  for (const bad of ['a/b', 'a b', 'ünï', 'x\0']) assert.match(storePathNameProblem(bad)!, /outside/, bad);
  for (const reserved of ['.', '..', '.-x', '..-x']) assert.match(storePathNameProblem(reserved)!, /reserved/, reserved);
  assert.equal(storePathNameProblem('.x'), undefined);
});
