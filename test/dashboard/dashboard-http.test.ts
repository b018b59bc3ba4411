// The dashboard over HTTP, as a browser without JavaScript uses it: plain GETs
// and form POSTs against a real `larder serve` holding real uploads, with the
// session cookie carried by hand. Who sees what, what forms do, and which
// requests are refused.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { api, startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { formatBytes } from '../../src/services/units.ts';
import { askMissing, download, pushSamples } from './sample-uploads.ts';

/** A cookie jar of one cookie, and requests that never follow redirects. */
class Visitor {
  readonly server: RunningLarder;
  cookie: string | undefined;

  constructor(server: RunningLarder) {
    this.server = server;
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Headers }> {
    const res = await fetch(`${this.server.url}${path}`, { headers: { ...headers, ...(this.cookie && { Cookie: this.cookie }) }, redirect: 'manual' });
    return { status: res.status, body: await res.text(), headers: res.headers };
  }

  async post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Headers }> {
    const res = await fetch(`${this.server.url}${path}`, {
      method: 'POST',
      body: new URLSearchParams(form),
      headers: { ...headers, ...(this.cookie && { Cookie: this.cookie }) },
      redirect: 'manual',
    });
    const setCookie = res.headers.get('set-cookie');
    if (setCookie) {
      const value = /^larder_session=([^;]*)/.exec(setCookie)?.[1];
      this.cookie = value ? `larder_session=${value}` : undefined;
    }
    return { status: res.status, body: await res.text(), headers: res.headers };
  }

  async signIn(token: string): Promise<void> {
    const res = await this.post('/ui/login', { token, next: '/' });
    assert.equal(res.status, 303, res.body);
  }

  /** The CSRF token the forms of a page carry. */
  async csrf(path: string): Promise<string> {
    const page = await this.get(path);
    assert.equal(page.status, 200, page.body);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1];
    assert.ok(csrf, `no CSRF field on ${path}`);
    return csrf;
  }
}

async function createToken(server: RunningLarder, body: Record<string, unknown>): Promise<string> {
  const res = await api(server, '/api/v1/tokens', { method: 'POST', body: JSON.stringify(body) });
  assert.equal(res.status, 201);
  return ((await res.json()) as { token: string }).token;
}

async function whoami(server: RunningLarder, token: string): Promise<number> {
  return (await api(server, '/api/v1/whoami', { token })).status;
}

const STORE = '/nix/store';

/** The statuses of the complete HTTP/1.1 answers at the start of `data` (each with a Content-Length). */
function answeredStatuses(data: string): number[] {
  const statuses: number[] = [];
  let at = 0;
  for (;;) {
    const headEnd = data.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return statuses;
    const head = data.slice(at, headEnd);
    const length = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? 0);
    if (data.length < headEnd + 4 + length) return statuses;
    statuses.push(Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]));
    at = headEnd + 4 + length;
  }
}

/**
 * Sends requests back to back on one connection (as a keep-alive client may, before the server
 * has finished the previous answer) and resolves with the status of each answer, in order.
 */
function pipelined(server: RunningLarder, requests: readonly string[]): Promise<number[]> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only these answers came within 10 s: ${answeredStatuses(received).join(', ') || 'none'}`));
    }, 10_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      const statuses = answeredStatuses(received);
      if (statuses.length === requests.length) {
        clearTimeout(timer);
        socket.end();
        resolve(statuses);
      }
    });
    socket.on('error', reject);
    socket.write(requests.map((path) => `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${server.adminToken}\r\n\r\n`).join(''));
  });
}

test('the dashboard over HTTP', async (t) => {
  const server = await startLarder(t);
  for (const [name, isPublic] of [['pub', true], ['secret', false]] as const) {
    assert.equal((await api(server, '/api/v1/caches', { method: 'POST', body: JSON.stringify({ name, public: isPublic }) })).status, 201);
  }
  const readMain = await createToken(server, { cache: 'main', permission: 'read', label: 'reader' });
  const adminMain = await createToken(server, { cache: 'main', permission: 'admin', label: 'main admin' });
  const adminSecret = await createToken(server, { cache: 'secret', permission: 'admin' });
  const main = await pushSamples(server.cacheUrl, server.writeToken, [
    { name: 'glibc-2.40', size: 9000 },
    { name: 'bash-5.2p37', refs: ['glibc-2.40'] },
    { name: 'Hello-2.12.1', refs: ['glibc-2.40'] },
    { name: 'app-1.0', refs: ['Hello-2.12.1', 'bash-5.2p37'] },
  ]);
  const pub = await pushSamples(`${server.url}/pub`, server.adminToken, [{ name: 'pubpkg-1.0' }]);
  await pushSamples(`${server.url}/secret`, adminSecret, [{ name: 'secret-thing-1' }]);
  const path = (name: string) => main.get(name)!;

  await t.test('without a session: public caches only, every page readable without JavaScript', async () => {
    const visitor = new Visitor(server);
    const overview = await visitor.get('/');
    assert.equal(overview.status, 200);
    assert.match(overview.headers.get('content-type')!, /^text\/html; charset=utf-8/);
    assert.match(overview.body, /href="\/ui\/caches\/pub">pub<\/a>/);
    assert.ok(!overview.body.includes('/ui/caches/main"') && !overview.body.includes('/ui/caches/secret"'), 'private caches are not listed');
    assert.match(overview.body, /pubpkg-1\.0/);
    for (const page of ['/', '/ui/caches/pub', `/ui/caches/pub/paths/${pub.get('pubpkg-1.0')!.hashPart}`, '/ui/caches/pub/search?q=pubpkg']) {
      const res = await visitor.get(page);
      assert.equal(res.status, 200, page);
      // Scripts only by URL (the CSP allows no inline script): the page is whole without them.
      for (const tag of res.body.match(/<script[^>]*>/g) ?? []) assert.match(tag, /^<script src="\/ui\/static\/dashboard\.js\?v=[0-9a-f]+" defer>$/, page);
      assert.ok(!/<script[^>]*>[^<]/.test(res.body), `${page}: no inline script`);
      assert.match(res.headers.get('content-security-policy')!, /script-src 'self'/);
    }
    const notFound = ['main', 'secret', 'no-such-cache'].map(async (name) => [name, await visitor.get(`/ui/caches/${name}`)] as const);
    for (const [name, res] of await Promise.all(notFound)) {
      assert.equal(res.status, 404, name);
      assert.ok(res.body.includes(`There is no cache &#39;${name}&#39; that you can see.`), name);
    }
    assert.equal((await visitor.get(`/ui/caches/main/paths/${path('app-1.0').hashPart}`)).status, 404);
    assert.equal((await visitor.get('/ui/caches/secret/search?q=secret')).status, 404);
    const head = await fetch(`${server.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await head.text()).length, 0);
    assert.equal((await fetch(`${server.url}/`, { method: 'POST' })).status, 405);
    // A page needing a session sends the browser to sign in, and back.
    const tokens = await visitor.get('/ui/caches/pub/tokens');
    assert.equal(tokens.status, 303);
    assert.equal(tokens.headers.get('location'), '/ui/login?next=%2Fui%2Fcaches%2Fpub%2Ftokens');
    const css = await fetch(`${server.url}/ui/static/dashboard.css`);
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type')!, /^text\/css/);
  });

  await t.test('sign-in: an HttpOnly, SameSite=Strict cookie (Secure behind https); a bad token gets a 401 and no cookie', async () => {
    const visitor = new Visitor(server);
    const bad = await visitor.post('/ui/login', { token: 'ldr_not-a-token', next: '/' });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('set-cookie'), null);
    assert.match(bad.body, /That token is unknown, revoked or expired\./);
    assert.ok(!bad.body.includes('ldr_not-a-token'), 'the token is not echoed');

    const good = await fetch(`${server.url}/ui/login`, { method: 'POST', body: new URLSearchParams({ token: readMain, next: '/ui/caches/main' }), redirect: 'manual' });
    assert.equal(good.status, 303);
    assert.equal(good.headers.get('location'), '/ui/caches/main');
    assert.equal(good.headers.get('set-cookie'), `larder_session=${encodeURIComponent(readMain)}; Path=/; HttpOnly; SameSite=Strict`);
    const proxied = await fetch(`${server.url}/ui/login`, {
      method: 'POST',
      body: new URLSearchParams({ token: readMain, next: 'https://evil.example/' }),
      headers: { 'X-Forwarded-Proto': 'https' },
      redirect: 'manual',
    });
    assert.match(proxied.headers.get('set-cookie')!, /; Secure$/);
    assert.equal(proxied.headers.get('location'), '/', 'only a path on this server is followed');
    const crossSite = await visitor.post('/ui/login', { token: readMain }, { Origin: 'https://evil.example' });
    assert.equal(crossSite.status, 403);
    assert.equal(crossSite.headers.get('set-cookie'), null);
  });

  await t.test('a read token sees its private cache and the public one, not other private caches, and no admin pages', async () => {
    const visitor = new Visitor(server);
    await visitor.signIn(readMain);
    const overview = await visitor.get('/');
    assert.match(overview.body, /Signed in: <b>reader<\/b> \(read on main\)/);
    assert.match(overview.body, /href="\/ui\/caches\/main">main<\/a>/);
    assert.match(overview.body, /href="\/ui\/caches\/pub">pub<\/a>/);
    assert.ok(!overview.body.includes('secret'));
    assert.equal((await visitor.get('/ui/caches/main')).status, 200);
    assert.equal((await visitor.get('/ui/caches/secret')).status, 404);
    for (const page of ['/ui/caches/main/tokens', '/ui/caches/main/keys', '/ui/caches/main/gc', '/ui/tokens']) {
      const res = await visitor.get(page);
      assert.equal(res.status, 403, page);
      assert.match(res.body, /needs a server-admin token|lacks admin permission/);
    }
    const cachePage = await visitor.get('/ui/caches/main');
    assert.ok(!cachePage.body.includes('/ui/caches/main/tokens'), 'no admin tabs');
    assert.match(cachePage.body, new RegExp(`extra-substituters = ${server.url.replace(/[.]/g, '\\.')}/main`));
  });

  await t.test('search by name, hash prefix or store path; a path page with narinfo, signatures, references, referrers, closure size', async () => {
    const visitor = new Visitor(server);
    await visitor.signIn(readMain);
    const byName = await visitor.get('/ui/caches/main/search?q=HELLO');
    assert.equal(byName.status, 200);
    assert.ok(byName.body.includes(`/ui/caches/main/paths/${path('Hello-2.12.1').hashPart}`));
    assert.ok(!byName.body.includes(path('bash-5.2p37').hashPart));
    const bash = path('bash-5.2p37');
    const byHash = await visitor.get(`/ui/caches/main/search?q=${bash.hashPart.slice(0, 7)}`);
    assert.ok(byHash.body.includes(`/ui/caches/main/paths/${bash.hashPart}`));
    const byStorePath = await visitor.get(`/ui/caches/main/search?q=${encodeURIComponent(path('app-1.0').storePath)}`);
    assert.equal(byStorePath.status, 303);
    assert.equal(byStorePath.headers.get('location'), `/ui/caches/main/paths/${path('app-1.0').hashPart}`);
    assert.match((await visitor.get('/ui/caches/main/search?q=no-such-name')).body, /No paths matching “no-such-name”/);
    assert.equal((await visitor.get(`/ui/caches/main/search?q=x&after=${encodeURIComponent("' OR 1=1")}`)).status, 400);

    const app = await visitor.get(`/ui/caches/main/paths/${path('app-1.0').hashPart}`);
    assert.equal(app.status, 200);
    assert.ok(app.body.includes(`<dt>StorePath</dt><dd class="mono">${STORE}/${path('app-1.0').base}</dd>`));
    assert.ok(app.body.includes(`<dt>NarSize</dt><dd class="mono">${path('app-1.0').narSize}</dd>`));
    assert.match(app.body, /<b>[^<]+-main-1<\/b> <span class="badge ok">valid<\/span> <span class="badge active">active key<\/span>/);
    for (const ref of ['Hello-2.12.1', 'bash-5.2p37']) assert.ok(app.body.includes(`href="/ui/caches/main/paths/${path(ref).hashPart}"`), ref);
    // The closure: app, Hello, bash, glibc.
    const closureFiles = ['app-1.0', 'Hello-2.12.1', 'bash-5.2p37', 'glibc-2.40'].reduce((sum, name) => sum + path(name).fileSize, 0);
    assert.match(app.body, /<b>4<\/b><span>paths in its closure<\/span>/);
    assert.ok(app.body.includes(`<b>${formatBytes(closureFiles)}</b><span>closure stored`), `closure of ${closureFiles} bytes`);
    const glibc = await visitor.get(`/ui/caches/main/paths/${path('glibc-2.40').hashPart}`);
    assert.match(glibc.body, /<b>1<\/b><span>paths in its closure<\/span>/);
    for (const referrer of ['Hello-2.12.1', 'bash-5.2p37']) assert.ok(glibc.body.includes(`href="/ui/caches/main/paths/${path(referrer).hashPart}"`), referrer);
    assert.ok(!glibc.body.includes(`href="/ui/caches/main/paths/${path('app-1.0').hashPart}"`), 'referrers, not the whole reverse closure');
    assert.equal((await visitor.get(`/ui/caches/main/paths/${'0'.repeat(32)}`)).status, 404);
    assert.equal((await visitor.get('/ui/caches/main/paths/not-a-hash')).status, 404);
  });

  await t.test('admin: a created token is shown once and works; revoked, it stops working', async () => {
    const visitor = new Visitor(server);
    await visitor.signIn(adminMain);
    const csrf = await visitor.csrf('/ui/caches/main/tokens');
    const created = await visitor.post('/ui/caches/main/tokens', { csrf, permission: 'write', label: 'ci <b>runner</b>', expires: '30d' });
    assert.equal(created.status, 201, created.body);
    assert.equal(created.headers.get('cache-control'), 'no-store');
    const token = /id="new-token-value">(ldr_[A-Za-z0-9_-]+)</.exec(created.body)?.[1];
    assert.ok(token, 'the new token is on the page');
    assert.equal(created.body.split(token).length - 1, 1, 'once');
    assert.ok(created.body.includes('ci &lt;b&gt;runner&lt;/b&gt;'));
    assert.equal(await whoami(server, token), 200);
    const me = (await (await api(server, '/api/v1/whoami', { token })).json()) as { id: string; cache: string; permission: string; expiresAt: number };
    assert.deepEqual([me.cache, me.permission], ['main', 'write']);
    assert.ok(me.expiresAt > Date.now() + 29 * 86_400_000 && me.expiresAt < Date.now() + 31 * 86_400_000);

    const list = await visitor.get('/ui/caches/main/tokens');
    assert.ok(!list.body.includes(token), 'never shown again');
    assert.ok(list.body.includes(`id="token-${me.id}"`));

    const revoked = await visitor.post(`/ui/caches/main/tokens/${me.id}/revoke`, { csrf });
    assert.equal(revoked.status, 303);
    assert.equal(revoked.headers.get('location'), `/ui/caches/main/tokens?revoked=${me.id}`);
    assert.equal(await whoami(server, token), 401);
    const after = await visitor.get(revoked.headers.get('location')!);
    assert.match(after.body, new RegExp(`Token ${me.id} is revoked`));
    assert.match(after.body, new RegExp(`id="token-${me.id}"[\\s\\S]*?badge revoked`));
    const again = await visitor.post(`/ui/caches/main/tokens/${me.id}/revoke`, { csrf });
    assert.equal(again.headers.get('location'), `/ui/caches/main/tokens?already-revoked=${me.id}`);
    // A cache admin cannot reach another cache's tokens through its own page.
    const secretTokens = (await (await api(server, '/api/v1/tokens?cache=secret')).json()) as { id: string }[];
    assert.equal((await visitor.post(`/ui/caches/main/tokens/${secretTokens[0]!.id}/revoke`, { csrf })).status, 404);
    assert.equal(await whoami(server, adminSecret), 200);
    const badPermission = await visitor.post('/ui/caches/main/tokens', { csrf, permission: 'root' });
    assert.equal(badPermission.status, 400);
    assert.match(badPermission.body, /Permission: expected read, write or admin, got &#39;root&#39;/);
    const badExpiry = await visitor.post('/ui/caches/main/tokens', { csrf, permission: 'read', expires: 'soon' });
    assert.equal(badExpiry.status, 400);
    assert.match(badExpiry.body, /Expires after: expected a duration/);
  });

  await t.test('CSRF: a form without this session’s token, or sent from another site, is refused and changes nothing', async () => {
    const visitor = new Visitor(server);
    await visitor.signIn(adminMain);
    const csrf = await visitor.csrf('/ui/caches/main/tokens');
    const countTokens = async () => ((await (await api(server, '/api/v1/tokens?cache=main')).json()) as unknown[]).length;
    const keyCount = async () => ((await (await api(server, '/api/v1/caches/main/keys')).json()) as unknown[]).length;
    const [tokensBefore, keysBefore] = [await countTokens(), await keyCount()];
    const other = new Visitor(server);
    await other.signIn(readMain);
    const otherSessionCsrf = await other.csrf('/').catch(() => undefined);
    const attempts: [string, Record<string, string>, Record<string, string>, number][] = [
      ['no CSRF token', { permission: 'admin' }, {}, 403],
      ['a wrong CSRF token', { csrf: 'x'.repeat(43), permission: 'admin' }, {}, 403],
      ['another site’s Origin', { csrf, permission: 'admin' }, { Origin: 'http://evil.example' }, 403],
      ['Sec-Fetch-Site: cross-site', { csrf, permission: 'admin' }, { 'Sec-Fetch-Site': 'cross-site' }, 403],
    ];
    if (otherSessionCsrf) attempts.push(['another session’s CSRF token', { csrf: otherSessionCsrf, permission: 'admin' }, {}, 403]);
    for (const [what, form, headers, status] of attempts) {
      const res = await visitor.post('/ui/caches/main/tokens', form, headers);
      assert.equal(res.status, status, what);
      assert.match(res.body, /Refused/, what);
      assert.ok(!/ldr_[A-Za-z0-9_-]{20}/.test(res.body), what);
    }
    assert.equal((await visitor.post('/ui/caches/main/keys/rotate', {})).status, 403);
    const anonymous = new Visitor(server);
    const noSession = await anonymous.post('/ui/caches/main/tokens', { csrf, permission: 'admin' });
    assert.equal(noSession.status, 404, 'without a session the private cache is not there');
    assert.equal((await anonymous.post('/ui/tokens', { csrf, permission: 'admin' })).status, 401);
    assert.equal(await countTokens(), tokensBefore);
    assert.equal(await keyCount(), keysBefore);
    // Same-origin forms (what a browser sends) pass.
    const ok = await visitor.post('/ui/caches/main/tokens', { csrf, permission: 'read' }, { Origin: server.url, 'Sec-Fetch-Site': 'same-origin' });
    assert.equal(ok.status, 201);
  });

  await t.test('keys: rotate and retire through the forms; the only active key cannot be retired', async () => {
    const visitor = new Visitor(server);
    await visitor.signIn(adminMain);
    const csrf = await visitor.csrf('/ui/caches/main/keys');
    const keys = async () => (await (await api(server, '/api/v1/caches/main/keys')).json()) as { name: string; state: string }[];
    const [first] = await keys();
    const onlyActive = await visitor.post(`/ui/caches/main/keys/${first!.name}/retire`, { csrf });
    assert.equal(onlyActive.status, 409);
    assert.match(onlyActive.body, /is the only active key of &#39;main&#39;; rotate first/);
    const rotated = await visitor.post('/ui/caches/main/keys/rotate', { csrf });
    assert.equal(rotated.status, 303);
    const after = await keys();
    const fresh = after.find((k) => k.state === 'active')!;
    assert.deepEqual(after.find((k) => k.name === first!.name)?.state, 'published');
    assert.equal(rotated.headers.get('location'), `/ui/caches/main/keys?rotated=${fresh.name}`);
    assert.match((await visitor.get(rotated.headers.get('location')!)).body, new RegExp(`New signing key ${fresh.name} is active`));
    const retired = await visitor.post(`/ui/caches/main/keys/${first!.name}/retire`, { csrf });
    assert.equal(retired.status, 303);
    assert.equal((await keys()).find((k) => k.name === first!.name)?.state, 'retired');
    // New pushes are signed by the new key, and the path page says so.
    const later = await pushSamples(server.cacheUrl, server.writeToken, [{ name: 'after-rotation', refs: ['glibc-2.40'] }], new Map(main));
    const page = await visitor.get(`/ui/caches/main/paths/${later.get('after-rotation')!.hashPart}`);
    assert.ok(page.body.includes(`<b>${fresh.name}</b> <span class="badge ok">valid</span> <span class="badge active">active key</span>`));
    const old = await visitor.get(`/ui/caches/main/paths/${path('glibc-2.40').hashPart}`);
    assert.ok(old.body.includes(`<b>${first!.name}</b> <span class="badge ok">valid</span> <span class="badge retired">retired key</span>`));
  });

  await t.test('GC preview: what a collection would free and the pins that keep what', async () => {
    const visitor = new Visitor(server);
    await visitor.signIn(adminMain);
    const pin = await api(server, '/api/v1/caches/main/pins/release', { method: 'PUT', body: JSON.stringify({ storePath: path('Hello-2.12.1').storePath }) });
    assert.equal(pin.status, 200);
    const page = await visitor.get('/ui/caches/main/gc');
    assert.equal(page.status, 200);
    assert.match(page.body, /nothing was deleted/);
    const hello = path('Hello-2.12.1');
    assert.ok(page.body.includes(`<td><b>release</b></td><td><a class="name" href="/ui/caches/main/paths/${hello.hashPart}">Hello-2.12.1</a>`));
    assert.match(page.body, /<td><b>release<\/b><\/td><td>.*?<\/td><td class="num">2 paths, /);
    assert.match(page.body, /<b>0<\/b><span>would be freed/, 'no retention policy: nothing goes');
    // Nothing was deleted by looking.
    assert.equal((await fetch(`${server.cacheUrl}/${path('app-1.0').hashPart}.narinfo`, { headers: { Authorization: `Bearer ${readMain}` } })).status, 200);
    // Visits within a minute share that plan; "plan again" makes a new one.
    const second = await api(server, '/api/v1/caches/main/pins/staging', { method: 'PUT', body: JSON.stringify({ storePath: path('app-1.0').storePath }) });
    assert.equal(second.status, 200);
    const shared = await visitor.get('/ui/caches/main/gc');
    assert.ok(!shared.body.includes('<td><b>staging</b></td>'), 'the plan made before the pin');
    assert.match(shared.body, /href="\/ui\/caches\/main\/gc\?fresh=1">plan again<\/a>/);
    const fresh = await visitor.get('/ui/caches/main/gc?fresh=1');
    assert.ok(fresh.body.includes('<td><b>staging</b></td>'), 'a new plan sees the new pin');
    assert.equal((await api(server, '/api/v1/caches/main/pins/staging', { method: 'DELETE' })).status, 200);
  });

  await t.test('server admin: every token, and server-admin tokens made from the dashboard', async () => {
    const visitor = new Visitor(server);
    await visitor.signIn(server.adminToken);
    const list = await visitor.get('/ui/tokens');
    assert.equal(list.status, 200);
    assert.match(list.body, /<option value="secret">secret<\/option>/);
    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body)![1]!;
    const refused = await visitor.post('/ui/tokens', { csrf, cache: '', permission: 'read' });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /must have admin permission/);
    const created = await visitor.post('/ui/tokens', { csrf, cache: '', permission: 'admin', label: 'second admin' });
    assert.equal(created.status, 201);
    const token = /id="new-token-value">(ldr_[A-Za-z0-9_-]+)</.exec(created.body)![1]!;
    assert.equal((await api(server, '/api/v1/caches', { token })).status, 200);
    const forSecret = await visitor.post('/ui/tokens', { csrf, cache: 'secret', permission: 'read' });
    assert.equal(forSecret.status, 201);
    assert.match(forSecret.body, /It grants read on secret/);
  });

  await t.test('signing out, or a revoked session token, ends the session', async () => {
    const visitor = new Visitor(server);
    const sessionToken = await createToken(server, { cache: 'main', permission: 'read', label: 'short-lived' });
    await visitor.signIn(sessionToken);
    const csrf = /name="csrf" value="([^"]+)"/.exec((await visitor.get('/')).body)![1]!;
    const out = await visitor.post('/ui/logout', { csrf });
    assert.equal(out.status, 303);
    assert.match(out.headers.get('set-cookie')!, /^larder_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0/);
    assert.equal(visitor.cookie, undefined);
    assert.match((await visitor.get(out.headers.get('location')!)).body, /Signed out\./);

    await visitor.signIn(sessionToken);
    const id = ((await (await api(server, '/api/v1/whoami', { token: sessionToken })).json()) as { id: string }).id;
    assert.equal((await api(server, `/api/v1/tokens/${id}`, { method: 'DELETE' })).status, 200);
    const after = await visitor.get('/ui/caches/main');
    assert.equal(after.status, 404, 'the session is over: the private cache is gone from view');
    assert.match(after.headers.get('set-cookie')!, /Max-Age=0/);
  });

  await t.test('an error answered while the previous answer on the connection is still going out is sent, not dropped', async () => {
    // On the public cache, so that main's counts (the last test) stay as they are.
    const nar = `/pub/${pub.get('pubpkg-1.0')!.narUrl}`;
    const missing = `/pub/${'0'.repeat(32)}.narinfo`;
    assert.deepEqual(await pipelined(server, [nar, missing, nar, missing]), [200, 404, 200, 404]);
    assert.deepEqual(await pipelined(server, [nar, '/ui/caches/no-such-cache', '/ui/caches/pub']), [200, 404, 200]);
  });

  await t.test('no cache can take the dashboard’s name', async () => {
    const res = await api(server, '/api/v1/caches', { method: 'POST', body: JSON.stringify({ name: 'ui' }) });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /cache name 'ui' is reserved/);
  });

  await t.test('downloads, hits and misses reach the pages once written (at shutdown at the latest)', async () => {
    const hello = path('Hello-2.12.1');
    for (let i = 0; i < 3; i++) await download(server.cacheUrl, readMain, hello);
    await download(server.cacheUrl, readMain, path('app-1.0'));
    await askMissing(server.cacheUrl, readMain);
    // Stopping writes what was counted; a new server on the same data shows it.
    await server.stop();
    const again = await startLarder(t, { dataDir: server.dataDir });
    const visitor = new Visitor(again);
    await visitor.signIn(readMain);
    const page = await visitor.get('/ui/caches/main');
    // Hits: 3 + 1 narinfos served here and 1 by the GC test; misses: the 1 asked for here.
    assert.match(page.body, /<b>83\.3%<\/b><span>hit rate, 7 days \(5 of 6\)<\/span>/);
    assert.match(page.body, /<b>4<\/b><span>NAR downloads, 7 days<\/span>/);
    const top = page.body.slice(page.body.indexOf('Top paths by downloads'));
    const helloRow = new RegExp(`${hello.hashPart}[\\s\\S]*?<td class="num">3</td>`);
    assert.match(top, helloRow);
    assert.ok(top.indexOf(hello.hashPart) < top.indexOf(path('app-1.0').hashPart), 'most downloaded first');
    const overview = await visitor.get('/');
    assert.match(overview.body, /Top paths by downloads[\s\S]*Hello-2\.12\.1/);
  });
});
