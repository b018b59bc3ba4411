import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatPublicKey,
  formatSecretKey,
  generateSecretKey,
  parsePublicKey,
  parseSecretKey,
  signMessage,
  trustedKeyMap,
  verifySignature,
} from '../../src/nix/signing-key.ts';

test('a generated key round-trips through Nix key text and signs verifiably', () => {
  const key = generateSecretKey('cache.example.org-1');
  const secretText = formatSecretKey(key);
  assert.match(secretText, /^cache\.example\.org-1:[A-Za-z0-9+/]{86}==$/);
  const parsed = parseSecretKey(secretText);
  assert.deepEqual(parsed.seed, key.seed);
  assert.equal(formatPublicKey(parsed.publicKey), formatPublicKey(key.publicKey));

  const sig = signMessage(parsed, 'hello');
  const trusted = trustedKeyMap([parsePublicKey(formatPublicKey(key.publicKey))]);
  assert.equal(verifySignature(sig, 'hello', trusted), true);
  assert.equal(verifySignature(sig, 'hellO', trusted), false);
});

test('ed25519 is deterministic: the same key and message give the same Sig', () => {
  const key = generateSecretKey('k-1');
  assert.equal(signMessage(key, 'm'), signMessage(key, 'm'));
});

test('the first trusted key of a name wins, as in Nix', () => {
  const a = generateSecretKey('same');
  const b = generateSecretKey('same');
  const trusted = trustedKeyMap([a.publicKey, b.publicKey]);
  assert.equal(verifySignature(signMessage(a, 'x'), 'x', trusted), true);
  assert.equal(verifySignature(signMessage(b, 'x'), 'x', trusted), false);
});

test('refuses corrupt keys with a reason', () => {
  const key = generateSecretKey('k-1');
  const other = generateSecretKey('k-1');
  const mixed = `k-1:${Buffer.concat([key.seed, other.publicKey.bytes]).toString('base64')}`;
  assert.throws(() => parseSecretKey(mixed), /public half does not match its seed/);
  assert.throws(() => parseSecretKey('k-1:AAAA'), /holds 3 bytes; expected 64/);
  assert.throws(() => parsePublicKey('nokey'), /must look like '<name>:<base64>'/);
  assert.throws(() => parsePublicKey(':' + 'A'.repeat(43) + '='), /must look like/);
  assert.throws(() => parsePublicKey('k-1:' + 'A'.repeat(40)), /holds 30 bytes; expected 32/);
  assert.throws(() => parsePublicKey('k-1:@@@@'), /not valid base64/);
  assert.throws(() => generateSecretKey('has space'), /must be non-empty, without ':' or white space/);
});
