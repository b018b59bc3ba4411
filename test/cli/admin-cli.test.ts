// The admin CLI end to end: the real `larder` command in child processes
// against a real server, checked by what the server then does.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { larder, larderBin } from '../helpers/larder-cli.ts';
import { startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { unreachableUrl } from '../helpers/unreachable-url.ts';

async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The caller's environment without larder settings, with a config directory of its own. */
async function isolatedEnv(t: TestContext): Promise<NodeJS.ProcessEnv> {
  const { LARDER_SERVER: _server, LARDER_TOKEN: _token, ...env } = process.env;
  return { ...env, XDG_CONFIG_HOME: await tempDir(t, 'larder-config-') };
}

function as(server: RunningLarder, token = server.adminToken): string[] {
  return ['--server', server.url, '--token', token];
}

/** Runs a command that must fail; its stderr, which must be one `larder:` line. */
async function failure(args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  const error = await larder(args, env).then(
    (stdout) => assert.fail(`larder ${args.join(' ')} succeeded: ${stdout}`),
    (e: unknown) => e as Error & { stderr: string; code: number },
  );
  assert.notEqual(error.code, 0);
  assert.match(error.stderr, /^larder: [^\n]+\n$/, `one line expected, got: ${error.stderr}`);
  return error.stderr;
}

async function json<T>(args: readonly string[], env: NodeJS.ProcessEnv): Promise<T> {
  return JSON.parse(await larder([...args, '--json'], env)) as T;
}

function get(url: string, token?: string): Promise<Response> {
  return fetch(url, token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } });
}

test('cache create, list, show, update and delete', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);

  const created = await json<{ name: string; public: boolean; priority: number; compression: string; publicKeys: string[] }>(
    ['cache', 'create', 'team', '--public', '--priority', '30', '--compression', 'xz', ...as(server)],
    env,
  );
  assert.deepEqual(
    [created.name, created.public, created.priority, created.compression, created.publicKeys.length],
    ['team', true, 30, 'xz', 1],
  );
  // Public: Nix may read it without a token, at the priority given.
  const info = await get(`${server.url}/team/nix-cache-info`);
  assert.equal(info.status, 200);
  assert.match(await info.text(), /^Priority: 30$/m);

  const list = await larder(['cache', 'list', ...as(server)], env);
  assert.match(list, /^NAME +ACCESS +PRIORITY +COMPRESSION +URL$/m);
  assert.match(list, new RegExp(`^main +private +40 +zstd +${server.url}/main$`, 'm'));
  assert.match(list, new RegExp(`^team +public +30 +xz +${server.url}/team$`, 'm'));

  const shown = await larder(['cache', 'show', 'team', ...as(server)], env);
  assert.match(shown, /^access: +public$/m);
  assert.match(shown, new RegExp(`^public key: +${escape(created.publicKeys[0]!)}$`, 'm'));
  assert.deepEqual(await json(['cache', 'show', 'team', ...as(server)], env), created);

  await larder(['cache', 'update', 'team', '--private', '--priority', '50', ...as(server)], env);
  assert.equal((await get(`${server.url}/team/nix-cache-info`)).status, 401);
  assert.match(await (await get(`${server.url}/team/nix-cache-info`, server.adminToken)).text(), /^Priority: 50$/m);
  assert.match(await failure(['cache', 'update', 'team', '--public', '--private', ...as(server)], env), /--public or --private/);
  assert.match(await failure(['cache', 'update', 'team', ...as(server)], env), /nothing to change/);
  assert.match(await failure(['cache', 'update', 'team', '--priority', 'high', ...as(server)], env), /--priority/);
  assert.equal(
    await failure(['cache', 'update', 'team', '--compression', 'lzma', ...as(server)], env),
    "larder: compression: expected zstd, xz or none, got 'lzma'\n",
  );

  assert.match(await failure(['cache', 'delete', 'team', ...as(server)], env), /--yes/);
  assert.equal((await get(`${server.url}/team/nix-cache-info`, server.adminToken)).status, 200, 'refused delete must keep the cache');
  assert.equal(await larder(['cache', 'delete', 'team', '--yes', ...as(server)], env), 'deleted cache team\n');
  assert.equal(await failure(['cache', 'show', 'team', ...as(server)], env), "larder: no cache 'team'\n");
  assert.equal((await get(`${server.url}/team/nix-cache-info`, server.adminToken)).status, 404);
});

test('upstream add, list and remove; cache update --mirror', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);
  const key = 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';
  assert.equal(await larder(['upstream', 'list', 'main', ...as(server)], env), 'cache main has no upstreams\n');
  await larder(['upstream', 'add', 'main', 'https://cache.nixos.org/', '--key', key, ...as(server)], env);
  await larder(['upstream', 'add', 'main', 'http://10.0.0.2:8080/team', '--key', server.publicKey, '--priority', '10', ...as(server)], env);
  const listed = await larder(['upstream', 'list', 'main', ...as(server)], env);
  assert.match(listed, /^http:\/\/10\.0\.0\.2:8080\/team +10 +/m);
  assert.match(listed, new RegExp(`^https://cache\\.nixos\\.org +40 +${escape(key)}$`, 'm'));
  assert.ok(listed.indexOf('10.0.0.2') < listed.indexOf('cache.nixos.org'), 'in priority order');
  // Adding one that is there changes its keys and priority.
  await larder(['upstream', 'add', 'main', 'https://cache.nixos.org', '--key', key, '--priority', '5', ...as(server)], env);
  assert.match(await larder(['upstream', 'list', 'main', ...as(server)], env), /^https:\/\/cache\.nixos\.org +5 /m);
  assert.match(await failure(['upstream', 'add', 'main', 'https://b.example', '--key', 'nope', ...as(server)], env), /upstreams\[\d\]\.publicKeys\[0\]/);
  assert.match(await failure(['upstream', 'remove', 'main', 'https://nowhere.example', ...as(server)], env), /has no upstream https:\/\/nowhere\.example/);
  await larder(['upstream', 'remove', 'main', 'http://10.0.0.2:8080/team', ...as(server)], env);
  assert.doesNotMatch(await larder(['upstream', 'list', 'main', ...as(server)], env), /10\.0\.0\.2/);

  assert.match(await larder(['cache', 'update', 'main', '--mirror', ...as(server)], env), /^mirror: +on/m);
  assert.match(await larder(['cache', 'show', 'main', ...as(server)], env), /^upstream: +https:\/\/cache\.nixos\.org \(priority 5\)$/m);
  assert.match(await larder(['cache', 'update', 'main', '--no-mirror', ...as(server)], env), /^mirror: +off$/m);
});

test('key rotate, list and retire', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);
  type Key = { name: string; publicKey: string; state: string };

  const [first, ...others] = await json<Key[]>(['key', 'list', 'main', ...as(server)], env);
  assert.deepEqual(others, []);
  assert.equal(first!.publicKey, server.publicKey);
  assert.equal(first!.state, 'active');
  assert.match(await failure(['key', 'retire', 'main', first!.name, ...as(server)], env), /only active key/);

  const rotated = await json<Key>(['key', 'rotate', 'main', ...as(server)], env);
  assert.equal(rotated.state, 'active');
  const listed = await larder(['key', 'list', 'main', ...as(server)], env);
  assert.match(listed, new RegExp(`^${escape(first!.name)} +published +.*${escape(first!.publicKey)}$`, 'm'));
  assert.match(listed, new RegExp(`^${escape(rotated.name)} +active +.*${escape(rotated.publicKey)}$`, 'm'));
  const both = await json<{ publicKeys: string[] }>(['cache', 'show', 'main', ...as(server)], env);
  assert.deepEqual(both.publicKeys, [first!.publicKey, rotated.publicKey]);

  assert.equal(await larder(['key', 'retire', 'main', first!.name, ...as(server)], env), `retired key ${first!.name} of cache main\n`);
  const after = await json<Key[]>(['key', 'list', 'main', ...as(server)], env);
  assert.deepEqual(
    after.map((k) => [k.name, k.state]),
    [
      [first!.name, 'retired'],
      [rotated.name, 'active'],
    ],
  );
  assert.deepEqual((await json<{ publicKeys: string[] }>(['cache', 'show', 'main', ...as(server)], env)).publicKeys, [rotated.publicKey]);
  assert.match(await failure(['key', 'retire', 'main', 'no-such-key', ...as(server)], env), /no key 'no-such-key'/);
});

test('token create prints the token last; list shows it; revoke ends it', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);
  const cacheInfo = `${server.cacheUrl}/nix-cache-info`;
  assert.equal((await get(cacheInfo)).status, 401, 'main is private');

  const out = await larder(['token', 'create', '--cache', 'main', '--perm', 'read', '--label', 'ci', '--expires', '12h', ...as(server)], env);
  const lines = out.trimEnd().split('\n');
  const token = lines.at(-1)!;
  assert.match(token, /^ldr_\S+$/);
  assert.match(lines.slice(0, -1).join('\n'), /read on cache main/);
  assert.equal((await get(cacheInfo, token)).status, 200);
  assert.equal((await fetch(cacheInfo, { headers: { Authorization: `Basic ${btoa(`nix:${token}`)}` } })).status, 200, 'as Nix sends it from netrc');

  type Token = { id: string; label: string; cache: string | null; permission: string; expiresAt: number | null; revokedAt: number | null };
  const mine = (await json<Token[]>(['token', 'list', '--cache', 'main', ...as(server)], env)).find((t) => t.label === 'ci');
  assert.ok(mine, 'the new token is listed');
  assert.equal(mine.permission, 'read');
  assert.ok(Math.abs(mine.expiresAt! - (Date.now() + 12 * 3600_000)) < 60_000, 'expires in 12 hours');
  assert.doesNotMatch(await larder(['token', 'list', ...as(server)], env), new RegExp(escape(token)), 'secrets are never listed');

  // A read token may not hand out tokens.
  assert.match(await failure(['token', 'create', '--cache', 'main', '--perm', 'write', ...as(server, token)], env), /server-admin token or an admin token/);

  assert.equal(await larder(['token', 'revoke', mine.id, ...as(server)], env), `revoked token ${mine.id}\n`);
  assert.equal((await get(cacheInfo, token)).status, 401);
  assert.match(await larder(['token', 'list', ...as(server)], env), new RegExp(`^${mine.id} +main +read +ci +.* revoked `, 'm'));
  assert.match(await failure(['token', 'revoke', mine.id, ...as(server)], env), /already revoked/);

  const issued = await json<{ token: string; permission: string; cache: string }>(['token', 'create', '--cache', 'main', '--perm', 'write', ...as(server)], env);
  assert.deepEqual([issued.cache, issued.permission], ['main', 'write']);
  assert.equal((await get(cacheInfo, issued.token)).status, 200);

  assert.equal(
    await failure(['token', 'create', '--cache', 'main', '--perm', 'root', ...as(server)], env),
    "larder: --perm: expected read, write or admin, got 'root'\n",
  );
  for (const expires of ['10x', '0d', '-5s', 'soon']) {
    assert.match(await failure(['token', 'create', '--cache', 'main', '--perm', 'read', '--expires', expires, ...as(server)], env), /--expires/);
  }
  assert.match(await failure(['token', 'create', '--perm', 'read', ...as(server)], env), /needs --cache/);
  assert.match(await failure(['token', 'create', '--cache', 'nope', '--perm', 'read', ...as(server)], env), /no cache 'nope'/);
});

test('login saves the server and token for later commands; logout forgets them', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);
  const configFile = join(env.XDG_CONFIG_HOME!, 'larder', 'config.json');

  assert.match(await failure(['cache', 'list'], env), /no larder server given: pass --server URL --token TOKEN/);
  assert.match(await failure(['login', server.url, '--token', 'ldr_bogus'], env), /refused the token/);
  await assert.rejects(stat(configFile), { code: 'ENOENT' }, 'a refused token is not saved');

  assert.match(await larder(['login', `${server.url}/`, '--token', server.adminToken], env), /^logged in to .* \(server admin\)/);
  assert.equal((await stat(configFile)).mode & 0o777, 0o600);
  assert.equal((await stat(join(env.XDG_CONFIG_HOME!, 'larder'))).mode & 0o777, 0o700);
  assert.deepEqual(JSON.parse(await readFile(configFile, 'utf8')), { server: server.url, token: server.adminToken });

  assert.match(await larder(['cache', 'list'], env), /^main +private/m);
  await larder(['cache', 'create', 'after-login'], env);
  assert.equal((await get(`${server.url}/after-login/nix-cache-info`, server.adminToken)).status, 200);

  // Flags and environment come before the saved login, and its token never goes elsewhere.
  const elsewhere = await unreachableUrl();
  assert.equal(await failure(['cache', 'list', '--server', elsewhere], env), `larder: cannot reach larder at ${elsewhere}: ECONNREFUSED\n`);
  assert.equal(await failure(['cache', 'list'], { ...env, LARDER_SERVER: elsewhere }), `larder: cannot reach larder at ${elsewhere}: ECONNREFUSED\n`);
  assert.match(await failure(['cache', 'list'], { ...env, LARDER_TOKEN: 'ldr_bogus' }), /token is unknown, revoked or expired/);

  assert.equal(await larder(['logout'], env), `logged out of ${server.url}\n`);
  await assert.rejects(stat(configFile), { code: 'ENOENT' });
  assert.match(await failure(['cache', 'list'], env), /no larder server given/);
  assert.equal(await larder(['logout'], env), 'not logged in\n');
});

test('login reads the token from standard input', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile(process.execPath, [larderBin, 'login', server.url], { env, encoding: 'utf8' }, (error, out, err) =>
      error ? reject(new Error(err)) : resolve(out),
    );
    child.stdin!.end(`${server.writeToken}\n`);
  });
  assert.match(stdout, /write on cache main/);
  assert.match(await larder(['cache', 'show', 'main'], env), new RegExp(`public key: +${escape(server.publicKey)}`));
});

test('use prints the nix.conf and netrc lines for a cache', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);
  const dir = await tempDir(t, 'larder-use-');
  const netrcFile = join(dir, 'netrc');
  const files = ['--nix-conf', join(dir, 'nix.conf'), '--netrc-file', netrcFile];

  const out = await larder(['use', server.cacheUrl, '--token', server.writeToken, ...files], env);
  const lines = out.split('\n');
  assert.ok(lines.includes(`extra-substituters = ${server.cacheUrl}`), out);
  assert.ok(lines.includes(`extra-trusted-public-keys = ${server.publicKey}`), out);
  assert.ok(lines.includes(`netrc-file = ${netrcFile}`), out);
  assert.ok(lines.includes(server.netrcLine), out);
  await assert.rejects(stat(netrcFile), { code: 'ENOENT' }, 'without --write nothing is written');

  const flake = await larder(['use', server.cacheUrl, '--flake', '--token', server.writeToken, ...files], env);
  assert.match(flake, /^nixConfig = \{$/m);
  assert.ok(flake.includes(`extra-trusted-public-keys = [ "${server.publicKey}" ];`), flake);

  // Without --token, the saved login may look the keys up, but no token is offered to Nix.
  await larder(['login', server.url, '--token', server.adminToken], env);
  const anonymous = await larder(['use', server.cacheUrl, ...files], env);
  assert.ok(anonymous.split('\n').includes(`extra-trusted-public-keys = ${server.publicKey}`), anonymous);
  assert.doesNotMatch(anonymous, /netrc-file|machine|ldr_/);
  assert.match(anonymous, /cache main is private/);

  assert.equal(await failure(['use', `${server.url}/nope`, ...files], env), "larder: no cache 'nope'\n");
  assert.match(await failure(['use', server.url, ...files], env), /names no cache/);
});

test('use --write merges into existing files, and again changes nothing', async (t) => {
  const server = await startLarder(t);
  const env = await isolatedEnv(t);
  const dir = await tempDir(t, 'larder-use-');
  const nixConf = join(dir, 'nix.conf');
  const netrc = join(dir, 'netrc');
  await writeFile(nixConf, 'substituters = https://cache.nixos.org\nextra-substituters = https://other.example\n');
  await writeFile(netrc, 'machine other.example password theirs\nmachine 127.0.0.1 password ldr_stale\n', { mode: 0o644 });
  const args = ['use', server.cacheUrl, '--write', '--token', server.writeToken, '--nix-conf', nixConf, '--netrc-file', netrc];

  await larder(args, env);
  const written = { nixConf: await readFile(nixConf, 'utf8'), netrc: await readFile(netrc, 'utf8') };
  assert.equal(
    written.nixConf,
    [
      'substituters = https://cache.nixos.org',
      `extra-substituters = https://other.example ${server.cacheUrl}`,
      `extra-trusted-public-keys = ${server.publicKey}`,
      `netrc-file = ${netrc}`,
      '',
    ].join('\n'),
  );
  assert.equal(written.netrc, `machine other.example password theirs\n${server.netrcLine}\n`);
  assert.equal((await stat(netrc)).mode & 0o777, 0o600);

  const again = await larder(args, env);
  assert.match(again, /already up to date/);
  assert.deepEqual({ nixConf: await readFile(nixConf, 'utf8'), netrc: await readFile(netrc, 'utf8') }, written);

  // The credentials written are the ones the cache accepts, sent as Nix sends them.
  const password = /password (\S+)$/.exec(written.netrc.trimEnd())![1]!;
  const res = await fetch(`${server.cacheUrl}/nix-cache-info`, { headers: { Authorization: `Basic ${btoa(`:${password}`)}` } });
  assert.equal(res.status, 200);
});

test('a server that cannot be reached is named in one line', async (t) => {
  const env = await isolatedEnv(t);
  const url = await unreachableUrl();
  assert.equal(await failure(['cache', 'list', '--server', url, '--token', 'x'], env), `larder: cannot reach larder at ${url}: ECONNREFUSED\n`);
  assert.match(await failure(['cache', 'list', '--server', 'ftp://example.org', '--token', 'x'], env), /http:\/\/ or https:\/\//);
});


function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
