// The pages as pure functions of what they show: hostile text stays text, a
// new token appears on the page that created it and nowhere else, forms that
// change state carry the CSRF token, and signatures are checked for real.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { narinfoFields, signatureViews } from '../../src/dashboard/narinfo-view.ts';
import type { Viewer } from '../../src/dashboard/layout.ts';
import { renderError } from '../../src/dashboard/pages/error.ts';
import { renderKeys } from '../../src/dashboard/pages/keys.ts';
import { renderOverview } from '../../src/dashboard/pages/overview.ts';
import { renderPath } from '../../src/dashboard/pages/path.ts';
import { renderSearch } from '../../src/dashboard/pages/search.ts';
import { renderSignIn } from '../../src/dashboard/pages/sign-in.ts';
import { renderTokens } from '../../src/dashboard/pages/tokens.ts';
import type { CacheRecord, KeyRecord, PathSummary, TokenRecord } from '../../src/index/cache-index.ts';
import { signNarInfo } from '../../src/nix/fingerprint.ts';
import { formatNarInfo, parseNarInfo } from '../../src/nix/narinfo.ts';
import { formatPublicKey, formatSecretKey, generateSecretKey } from '../../src/nix/signing-key.ts';

const EVIL = `<script>alert("x")</script>" onmouseover='y'`;
const NOW = 1_800_000_000_000;
const hash = (c: string) => c.repeat(32);

const cache: CacheRecord = {
  name: 'main',
  public: false,
  priority: 40,
  compression: 'zstd',
  mirror: false,
  createdAt: NOW - 1e9,
  retentionMs: null,
  maxSize: null,
  generation: 0,
};

function token(id: string, overrides: Partial<TokenRecord> = {}): TokenRecord {
  return { id, hash: 'h'.repeat(64), label: EVIL, cache: 'main', permission: 'read', createdAt: NOW - 60_000, expiresAt: null, revokedAt: null, ...overrides };
}

const viewer: Viewer = { token: token('aaaa', { permission: 'admin', label: 'me' }), csrf: 'CSRF-VALUE' };

function summary(c: string, name: string, extra: Partial<PathSummary> = {}): PathSummary {
  return { hashPart: hash(c), base: `${hash(c)}-${name}`, narSize: 4096, fileSize: 1024, createdAt: NOW - 3_600_000, accessedAt: NOW - 60_000, downloads: 7, ...extra };
}

/** Every form posting somewhere carries the CSRF token. */
function assertFormsCarryCsrf(page: string): void {
  const forms = page.match(/<form[^>]*method="post"[\s\S]*?<\/form>/g) ?? [];
  assert.ok(forms.length > 0);
  for (const form of forms) assert.match(form, /<input type="hidden" name="csrf" value="CSRF-VALUE">/, form);
}

test('tokens page: labels are escaped, the new token is shown once, every form carries the CSRF token', () => {
  const created = { token: 'ldr_SECRET_just_made', record: token('bbbb', { label: 'ci' }) };
  const base = {
    viewer,
    now: NOW,
    scope: cache,
    tokens: [token('cccc'), token('dddd', { revokedAt: NOW - 1000 }), token('eeee', { expiresAt: NOW - 1 }), viewer.token],
    paged: false,
  };
  const withNew = renderTokens({ ...base, created });
  assert.equal(withNew.split('ldr_SECRET_just_made').length - 1, 1, 'the token appears exactly once');
  assert.ok(!withNew.includes('<script>alert'), 'no markup from a label');
  assert.ok(withNew.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot; onmouseover=&#39;y&#39;'));
  assertFormsCarryCsrf(withNew);
  assert.ok(!withNew.includes('h'.repeat(64)), 'token hashes are not shown');

  const later = renderTokens(base);
  assert.ok(!later.includes('ldr_'), 'no token on a page that did not create it');
  assert.ok(later.includes('/ui/caches/main/tokens/cccc/revoke'));
  assert.ok(!later.includes('/tokens/dddd/revoke'), 'a revoked token has no revoke button');
  assert.match(later, /id="token-eeee"[\s\S]*?expired/);
  assert.match(later, /id="token-aaaa"[\s\S]*?this session/);
});

test('server-wide tokens page offers every cache and a server-admin token', () => {
  const page = renderTokens({ viewer, now: NOW, scope: null, tokens: [], paged: false, cacheChoices: ['main', EVIL] });
  assert.match(page, /<option value="">none: a server-admin token<\/option><option value="main">main<\/option>/);
  assert.ok(!page.includes('<script>alert'));
  assert.match(page, /action="\/ui\/tokens"/);
});

test('path page: narinfo lines, references and names are text, not markup', () => {
  const narinfo = `StorePath: /nix/store/${hash('a')}-app\nURL: nar/x.nar\nDeriver: ${EVIL}\nReferences: ${hash('b')}-dep\nSig: k:${EVIL}\n`;
  const page = renderPath({
    viewer: undefined,
    now: NOW,
    cache,
    canAdmin: false,
    storeDir: '/nix/store',
    summary: summary('a', 'app'),
    narinfo,
    fields: narinfoFields(narinfo),
    signatures: [{ keyName: EVIL, value: EVIL, keyState: 'unknown', valid: false }],
    references: [
      { hashPart: hash('b'), base: `${hash('b')}-dep`, present: true, self: false },
      { hashPart: hash('c'), base: `${hash('c')}-upstream-only`, present: false, self: false },
    ],
    referrers: [summary('d', 'user')],
    referrersAfter: '',
    nextReferrersAfter: hash('d'),
    closure: { paths: 3, fileBytes: 3072, narBytes: 9000, complete: true },
    pins: [EVIL],
  });
  assert.ok(!page.includes('<script>alert'));
  assert.ok(page.includes(`href="/ui/caches/main/paths/${hash('b')}"`), 'a reference in the cache is a link');
  assert.ok(!page.includes(`href="/ui/caches/main/paths/${hash('c')}"`), 'one that is not, is not');
  assert.ok(page.includes(`/ui/caches/main/paths/${hash('a')}?after=${hash('d')}`), 'more referrers');
  assert.match(page, /<b>3<\/b><span>paths in its closure<\/span>/);
  assert.match(page, /<b>3\.0 KiB<\/b><span>closure stored \(8\.8 KiB unpacked\)<\/span>/);
  assert.ok(!page.includes('GC preview'), 'no admin tabs for a reader');
});

test('narinfo fields leave References and Sig to their own sections', () => {
  assert.deepEqual(narinfoFields('StorePath: /nix/store/x\nReferences: a b\nSig: k:v\nNarSize: 12\n'), [
    { name: 'StorePath', value: '/nix/store/x' },
    { name: 'NarSize', value: '12' },
  ]);
});

test('signatures are verified with the cache’s key of that name and labelled with its state', () => {
  const active = generateSecretKey('main-2');
  const old = generateSecretKey('main-1');
  const stranger = generateSecretKey('other-1');
  const unsigned = parseNarInfo(
    `StorePath: /nix/store/${hash('a')}-app\nURL: nar/${'1'.repeat(52)}.nar\nCompression: none\nNarHash: sha256:${'0'.repeat(52)}\nNarSize: 120\nReferences: \n`,
  );
  const signed = signNarInfo(unsigned, [active, old, stranger]);
  const keys: KeyRecord[] = [
    { cache: 'main', name: 'main-2', secretKey: formatSecretKey(active), publicKey: formatPublicKey(active.publicKey), state: 'active', createdAt: 2 },
    { cache: 'main', name: 'main-1', secretKey: formatSecretKey(old), publicKey: formatPublicKey(old.publicKey), state: 'published', createdAt: 1 },
  ];
  const views = new Map(signatureViews(signed, keys, '/nix/store').map((v) => [v.keyName, v]));
  assert.deepEqual([views.get('main-2')?.valid, views.get('main-2')?.keyState], [true, 'active']);
  assert.deepEqual([views.get('main-1')?.valid, views.get('main-1')?.keyState], [true, 'published']);
  assert.deepEqual([views.get('other-1')?.valid, views.get('other-1')?.keyState], [false, 'unknown']);
  // A signature over other contents does not verify.
  const tampered = { ...signed, narSize: 121 };
  assert.equal(signatureViews(tampered, keys, '/nix/store').find((v) => v.keyName === 'main-2')?.valid, false);
  assert.ok(formatNarInfo(signed).includes('Sig: main-2:'));
});

test('keys page: no secret key, no retiring the only active key, CSRF on rotate and retire', () => {
  const keys: KeyRecord[] = [
    { cache: 'main', name: 'main-1', secretKey: 'main-1:SECRET', publicKey: 'main-1:PUBLIC', state: 'published', createdAt: NOW - 1e6 },
    { cache: 'main', name: 'main-2', secretKey: 'main-2:SECRET', publicKey: 'main-2:PUBLIC', state: 'active', createdAt: NOW - 1e3 },
    { cache: 'main', name: 'main-0', secretKey: 'main-0:SECRET', publicKey: 'main-0:PUBLIC', state: 'retired', createdAt: NOW - 1e7 },
  ];
  const page = renderKeys({ viewer, now: NOW, cache, keys });
  assert.ok(!page.includes('SECRET'));
  assert.ok(page.includes('/ui/caches/main/keys/main-1/retire'));
  assert.ok(!page.includes('/ui/caches/main/keys/main-2/retire'), 'the only active key');
  assert.ok(!page.includes('/ui/caches/main/keys/main-0/retire'), 'already retired');
  assert.ok(page.includes('/ui/caches/main/keys/rotate'));
  assertFormsCarryCsrf(page);
});

test('overview without a session: public caches only are what it is given, and it says how to see more', () => {
  const page = renderOverview({
    viewer: undefined,
    now: NOW,
    caches: [
      {
        cache: { ...cache, name: 'pub', public: true },
        totals: { paths: 2, fileBytes: 2048, narBytes: 8192 },
        history: [],
        recent: { hits: 3, misses: 1, downloads: 5 },
        lastPush: NOW - 120_000,
      },
    ],
    more: 0,
    growth: [],
    lookups: [],
    recent: [{ cache: 'pub', path: summary('a', 'hello') }],
    top: [],
  });
  assert.match(page, /Sign in<\/a> with a token/);
  assert.match(page, /<td class="num">75\.0%<\/td>/);
  assert.match(page, /2 min ago/);
  assert.ok(!page.includes('name="csrf"'), 'no session, no forms that change state');
});

test('search page keeps the query in the box, escaped, and pages forward', () => {
  const page = renderSearch({ viewer, now: NOW, cache, canAdmin: true, query: EVIL, results: [summary('a', 'hello')], nextAfter: hash('a'), paged: false });
  assert.ok(!page.includes('<script>alert'));
  assert.match(page, /value="&lt;script&gt;/);
  assert.ok(page.includes(`after=${hash('a')}`));
});

test('sign-in and error pages never echo a token and offer a way on', () => {
  const signIn = renderSignIn({ viewer: undefined, next: '/ui/caches/main', problem: 'That token is unknown, revoked or expired.' });
  assert.match(signIn, /<input type="password" name="token"/);
  assert.match(signIn, /<input type="hidden" name="next" value="\/ui\/caches\/main">/);
  const error = renderError({ viewer: undefined, status: 404, message: `There is no cache '${EVIL}' that you can see.`, here: '/ui/caches/x' });
  assert.ok(!error.includes('<script>alert'));
  assert.ok(error.includes('href="/ui/login?next=%2Fui%2Fcaches%2Fx"'));
});
