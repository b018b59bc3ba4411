// The dashboard in a real browser: Debian's Chromium, headless, driven by
// Playwright (playwright-core, which brings no browser of its own) against a
// real `larder serve`: sign in, search, a path page and its references, a token
// created (shown once) and revoked. Skipped with the reason when Chromium is
// not installed; with LARDER_REQUIRE_SERVICES=1 (CI) that is a failure.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { api, startLarder } from '../helpers/larder-server.ts';
import { servicesRequired } from '../helpers/nix-env.ts';
import { CHROMIUM, chromiumInstalled, launchChromium } from './chromium.ts';
import { pushSamples } from './sample-uploads.ts';

// The timeout is a guard: a browser that hangs fails this test instead of CI.
test('in Chromium: sign in, search, a path page, a token created once and revoked', { timeout: 5 * 60_000 }, async (t) => {
  if (!chromiumInstalled()) {
    if (servicesRequired) throw new Error(`${CHROMIUM} is not installed but LARDER_REQUIRE_SERVICES=1 (apt-get install chromium)`);
    t.skip(`${CHROMIUM} is not installed (apt-get install chromium)`);
    return;
  }
  const server = await startLarder(t);
  const adminMain = ((await (await api(server, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ cache: 'main', permission: 'admin', label: 'browser admin' }) })).json()) as { token: string }).token;
  const pushed = await pushSamples(server.cacheUrl, server.writeToken, [
    { name: 'glibc-2.40', size: 20_000 },
    { name: 'hello-2.12.1', refs: ['glibc-2.40'] },
    { name: 'bash-5.2p37', refs: ['glibc-2.40'] },
  ]);
  const hello = pushed.get('hello-2.12.1')!;
  const glibc = pushed.get('glibc-2.40')!;

  const { browser, context } = await launchChromium();
  t.after(() => browser.close());
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => void (message.type() === 'error' && problems.push(`console: ${message.text()}`)));

  // Signing in: the private cache is not there before, and is after.
  await page.goto(`${server.url}/`);
  assert.equal(await page.locator('a[href="/ui/caches/main"]').count(), 0);
  await page.getByRole('link', { name: 'Sign in' }).first().click();
  await page.fill('input[name=token]', adminMain);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${server.url}/`);
  assert.match((await page.locator('header .who').textContent()) ?? '', /Signed in: browser admin \(admin of main\)/);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'larder_session');
  assert.ok(session?.httpOnly, 'HttpOnly');
  assert.equal(session?.sameSite, 'Strict');
  assert.equal(await page.evaluate('document.cookie'), '', 'scripts cannot read the session');

  // Search, then a path page.
  await page.locator('a[href="/ui/caches/main"]').first().click();
  await page.fill('input[name=q]', 'HELLO');
  await page.press('input[name=q]', 'Enter');
  await page.waitForURL(/\/ui\/caches\/main\/search\?q=HELLO/);
  const results = page.locator('table a.name');
  assert.deepEqual(await results.allTextContents(), ['hello-2.12.1']);
  await results.first().click();
  await page.waitForURL(`${server.url}/ui/caches/main/paths/${hello.hashPart}`);
  assert.equal(await page.locator('h2.name').textContent(), 'hello-2.12.1');
  assert.equal(await page.locator('#store-path').textContent(), hello.storePath);
  assert.match((await page.locator('ul.sigs').textContent()) ?? '', /valid\s*active key/);
  assert.match((await page.locator('ul.stats').textContent()) ?? '', /2paths in its closure/);
  // Down the closure to glibc, whose referrers include hello and bash.
  await page.locator(`a[href="/ui/caches/main/paths/${glibc.hashPart}"]`).click();
  await page.waitForURL(`${server.url}/ui/caches/main/paths/${glibc.hashPart}`);
  const referrers = await page.locator('section:has(h2:text("Referrers")) a.name').allTextContents();
  assert.deepEqual(referrers.sort(), ['bash-5.2p37', 'hello-2.12.1']);

  // A token: created, shown once, copied with the script's button, then revoked.
  await page.getByRole('link', { name: 'Tokens' }).click();
  await page.waitForURL(`${server.url}/ui/caches/main/tokens`);
  await page.fill('input[name=label]', 'made in a browser');
  await page.selectOption('select[name=permission]', 'read');
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = (await page.locator('#new-token-value').textContent())?.trim() ?? '';
  assert.match(secret, /^ldr_[A-Za-z0-9_-]{43}$/);
  assert.equal(await page.locator('button[data-copy]').isVisible(), true, 'the script ran (CSP allows it) and showed the copy button');
  const me = (await (await api(server, '/api/v1/whoami', { token: secret })).json()) as { id: string; label: string; permission: string };
  assert.deepEqual([me.label, me.permission], ['made in a browser', 'read']);

  await page.getByRole('link', { name: 'Tokens' }).click();
  await page.waitForURL(`${server.url}/ui/caches/main/tokens`);
  assert.ok(!(await page.content()).includes(secret), 'not shown again');
  const row = page.locator(`#token-${me.id}`);
  assert.match((await row.textContent()) ?? '', /made in a browser/);
  // The revoke form asks first (the script's confirm); the answer here is yes.
  page.once('dialog', (dialog) => void dialog.accept());
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.waitForURL(`${server.url}/ui/caches/main/tokens?revoked=${me.id}`);
  assert.match((await page.locator('.flash').textContent()) ?? '', new RegExp(`Token ${me.id} is revoked`));
  assert.match((await page.locator(`#token-${me.id}`).textContent()) ?? '', /revoked/);
  assert.equal((await api(server, '/api/v1/whoami', { token: secret })).status, 401);

  // Signing out ends the session: the private cache is gone from view.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${server.url}/?signed-out=1`);
  assert.equal(await page.locator('a[href="/ui/caches/main"]').count(), 0);
  assert.deepEqual(problems, [], 'no script errors and no CSP violations');
});
