// larder push against a real server and the real nix store.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { test } from 'node:test';
import { ZstdFrameSplitter } from '../../../src/compression/zstd-frames.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';
import { larder, larderBin } from '../../helpers/larder-cli.ts';
import { startLarder, type RunningLarder } from '../../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix, type NixEnv } from '../../helpers/nix-env.ts';
import { unreachableUrl } from '../../helpers/unreachable-url.ts';

const hashPart = (path: string) => path.slice('/nix/store/'.length, '/nix/store/'.length + 32);

interface Summary {
  pushed: number;
  present: number;
  upstream: number;
  failed: unknown[];
  bytes: number;
}

async function pushJson(nix: NixEnv, server: RunningLarder, args: string[]): Promise<Summary> {
  const out = await larder(['push', '--json', server.cacheUrl, ...args], { ...nix.env, LARDER_TOKEN: server.writeToken });
  return JSON.parse(out.trim().split('\n').at(-1)!) as Summary;
}

async function inCache(server: RunningLarder, path: string): Promise<boolean> {
  const res = await fetch(`${server.cacheUrl}/${hashPart(path)}.narinfo`, { headers: { Authorization: `Bearer ${server.writeToken}` } });
  await res.arrayBuffer();
  return res.status === 200;
}

/** Every narinfo the cache shows has its NAR and its references' narinfos. */
async function assertConsistent(server: RunningLarder, paths: readonly string[]): Promise<number> {
  const auth = { headers: { Authorization: `Bearer ${server.writeToken}` } };
  let visible = 0;
  for (const path of paths) {
    const res = await fetch(`${server.cacheUrl}/${hashPart(path)}.narinfo`, auth);
    if (res.status === 404) {
      await res.arrayBuffer();
      continue;
    }
    visible++;
    const info = parseNarInfo(await res.text());
    const nar = await fetch(`${server.cacheUrl}/${info.url}`, { ...auth, method: 'HEAD' });
    assert.equal(nar.status, 200, `${path}: narinfo visible but ${info.url} is missing`);
    for (const ref of info.references) {
      const r = await fetch(`${server.cacheUrl}/${ref.hashPart}.narinfo`, { ...auth, method: 'HEAD' });
      assert.equal(r.status, 200, `${path}: narinfo visible but its reference ${ref.hashPart}-${ref.name} is not`);
    }
  }
  return visible;
}

test('plain push sends the run-time closure; --build-deps adds build-time inputs and the .drv files', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const [a, b, c] = await nix.buildClosure([
    { name: 'a', size: 1000 },
    { name: 'b', buildOnly: ['a'], size: 2000 },
    { name: 'c', deps: ['b'], size: 3000 },
  ]);
  const plain = await pushJson(nix, server, [c!.out]);
  assert.deepEqual([plain.pushed, plain.present, plain.failed.length], [2, 0, 0]);
  assert.ok(await inCache(server, c!.out));
  assert.ok(await inCache(server, b!.out));
  assert.equal(await inCache(server, a!.out), false, 'a is a build-time input only');
  for (const built of [a, b, c]) assert.equal(await inCache(server, built!.drv), false);

  const full = await pushJson(nix, server, ['--build-deps', c!.out]);
  assert.equal(full.present, 2);
  for (const built of [a, b, c]) {
    assert.ok(await inCache(server, built!.out), `${built!.name} output`);
    assert.ok(await inCache(server, built!.drv), `${built!.name} .drv`);
  }
  assert.equal(full.failed.length, 0);
});

test('a second push uploads nothing; after a path is deleted from the cache only that path goes up', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const built = await nix.buildClosure([
    { name: 'x', size: 100_000, random: true },
    { name: 'y', deps: ['x'], size: 100_000, random: true },
    { name: 'z', deps: ['y'], size: 100_000, random: true },
  ]);
  const top = built.at(-1)!.out;
  const first = await pushJson(nix, server, [top]);
  assert.equal(first.pushed, 3);
  assert.ok(first.bytes > 300_000, `random payloads do not compress: ${first.bytes}`);
  const again = await pushJson(nix, server, [top]);
  assert.deepEqual([again.pushed, again.present, again.bytes], [0, 3, 0]);

  // Remove the top path from the cache behind the server's back: index row and NAR.
  const db = new DatabaseSync(join(server.dataDir, 'index.sqlite'));
  const row = db.prepare('SELECT file_hash FROM paths WHERE hash_part = ?').get(hashPart(top)) as { file_hash: string };
  db.prepare('DELETE FROM paths WHERE hash_part = ?').run(hashPart(top));
  db.prepare('DELETE FROM nars WHERE file_hash = ?').run(row.file_hash);
  db.close();
  const { rm } = await import('node:fs/promises');
  await rm(join(server.dataDir, 'store', 'main', 'nar', `${row.file_hash}.nar.zst`));

  const third = await pushJson(nix, server, [top]);
  assert.deepEqual([third.pushed, third.present], [1, 2]);
  assert.ok(third.bytes > 100_000 && third.bytes < 110_000, `only the top path went up: ${third.bytes} bytes`);
});

test('a push killed mid-way and run again completes; the cache never shows an incomplete closure', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const derivations = Array.from({ length: 24 }, (_, i) => ({
    name: `k${i}`,
    size: 1_500_000,
    random: true,
    ...(i > 0 && { deps: [`k${i - 1}`, ...(i > 2 ? [`k${i - 3}`] : [])] }),
  }));
  const built = await nix.buildClosure(derivations);
  const paths = built.map((b) => b.out);
  const top = paths.at(-1)!;

  const child = spawn(process.execPath, [larderBin, 'push', '--jobs', '2', server.cacheUrl, top], {
    env: { ...nix.env, LARDER_TOKEN: server.writeToken },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      err += text;
      if ((err.match(/^pushed /gm) ?? []).length >= 2) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', () => reject(new Error(`push ended before it could be killed: ${err}`)));
  });
  const visible = await assertConsistent(server, paths);
  assert.ok(visible >= 2 && visible < paths.length, `the push was really interrupted: ${visible} of ${paths.length} visible`);

  const resumed = await pushJson(nix, server, [top]);
  assert.equal(resumed.pushed + resumed.present, paths.length);
  assert.ok(resumed.present >= visible);
  assert.equal(await assertConsistent(server, paths), paths.length);
});

test('errors name the path or the problem, and exit non-zero', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const [one] = await nix.buildClosure([{ name: 'lonely' }]);
  const run = (args: string[], token = server.writeToken) =>
    larder(['push', server.cacheUrl, ...args], { ...nix.env, LARDER_TOKEN: token }).then(
      () => assert.fail('expected failure'),
      (error: Error & { stderr: string; code: number }) => error,
    );
  const bogus = await run(['/nix/store/00000000000000000000000000000000-nothing']);
  assert.match(bogus.stderr, /^larder: .*0{32}-nothing.*(not valid|does not exist)/m);
  assert.doesNotMatch(bogus.stderr, /\n\s+at /, 'no stack trace');
  const denied = await run([one!.out], 'ldr_wrong');
  assert.match(denied.stderr, /^larder: .*401/m);
  const nothing = await run([]);
  assert.match(nothing.stderr, /nothing to push/);
  const emptyDir = await mkdtemp(join(tmpdir(), 'larder-not-a-flake-'));
  t.after(() => rm(emptyDir, { recursive: true, force: true }));
  const notInstallable = await run([emptyDir]);
  assert.equal(notInstallable.stderr, `larder: '${emptyDir}' is not a store path, and nix could not resolve it as an installable: error: could not find a flake.nix file\n`);
  // No server there: retried with backoff (about 15 s), then one line.
  const nowhere = await unreachableUrl();
  const absent = await larder(['push', `${nowhere}/main`, one!.out], { ...nix.env, LARDER_TOKEN: server.writeToken }).then(
    () => assert.fail('expected failure'),
    (error: Error & { stderr: string; code: number }) => error,
  );
  assert.equal(absent.code, 1);
  assert.match(absent.stderr, /^larder: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/caches\/main: ECONNREFUSED \(gave up after 6 attempts\)\n$/);
});

test('installables from a flake, paths on stdin, and a live display on a terminal', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const { mkdir, writeFile } = await import('node:fs/promises');
  const flake = join(nix.dir, 'flake');
  await mkdir(flake);
  await writeFile(
    join(flake, 'flake.nix'),
    `{ outputs = { self }: { packages.x86_64-linux.default = derivation {
        name = "flaky-${nix.nonce}"; system = "x86_64-linux"; builder = "/bin/sh";
        args = [ "-c" "echo ${nix.nonce} > $out" ]; }; }; }\n`,
  );
  const installable = `path:${flake}#default`;
  const builtJson = (await nix.run('nix', ['build', '--no-link', '--json', installable])).stdout;
  const out = (JSON.parse(builtJson) as Array<{ outputs: { out: string } }>)[0]!.outputs.out;
  const viaFlake = await pushJson(nix, server, ['--build-deps', installable]);
  assert.equal(viaFlake.failed.length, 0);
  assert.ok(await inCache(server, out), 'the flake output');
  const drv = (await nix.run('nix', ['path-info', '--derivation', installable])).stdout.trim();
  assert.ok(await inCache(server, drv), 'and its .drv with --build-deps');

  const [a, b] = await nix.buildClosure([{ name: 'in-a' }, { name: 'in-b' }]);
  const stdinOut = await nix.run(process.execPath, [larderBin, 'push', '--json', '--stdin', server.cacheUrl], {
    env: { LARDER_TOKEN: server.writeToken },
    input: `${a!.out}\n\n${b!.out}\n`,
  });
  assert.equal((JSON.parse(stdinOut.stdout) as Summary).pushed, 2);

  // A pseudo-terminal (util-linux `script`) shows the live status line instead of per-path lines.
  const [c] = await nix.buildClosure([{ name: 'on-a-tty', size: 200_000 }]);
  const command = `${process.execPath} ${larderBin} push ${server.cacheUrl} ${c!.out}`;
  const tty = await nix.run('script', ['-qec', command, '/dev/null'], { env: { LARDER_TOKEN: server.writeToken } });
  assert.match(tty.stdout, /\r\x1b\[K\[1\/1\] /, 'a redrawn status line with the count');
  assert.doesNotMatch(tty.stdout, /^pushed \/nix/m);
  assert.match(tty.stdout, /1 pushed, 0 already present/);
});

test('paths an upstream serves are skipped, and both substituters together give the whole closure', async (t) => {
  if (skipWithoutNix(t)) return;
  const upstream = await startLarder(t, { env: { LARDER_KEY_NAME_PREFIX: 'upstream-' } });
  const server = await startLarder(t, { env: { LARDER_KEY_NAME_PREFIX: 'team-' } });
  const declared = await fetch(`${server.url}/api/v1/caches/main/upstreams`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${server.adminToken}` },
    body: JSON.stringify([{ url: upstream.cacheUrl, publicKeys: [upstream.publicKey], priority: 40 }]),
  });
  assert.equal(declared.status, 200, await declared.clone().text());
  // Upstreams are read anonymously, as cache.nixos.org is (and one netrc entry cannot tell two servers on 127.0.0.1 apart).
  const opened = await fetch(`${upstream.url}/api/v1/caches/main`, {
    method: 'PATCH',
    headers: { Authorization: `Bearer ${upstream.adminToken}` },
    body: JSON.stringify({ public: true }),
  });
  assert.equal(opened.status, 200);
  // The pushing machine trusts the upstream's key, as a team member trusting cache.nixos.org would.
  const nix = await nixEnv(t, [`trusted-public-keys = ${upstream.publicKey}`]);
  const built = await nix.buildClosure([
    { name: 'base', size: 50_000, random: true },
    { name: 'lib', deps: ['base'], size: 1000 },
    { name: 'app', deps: ['lib'], size: 1000 },
  ]);
  const [base, lib, app] = built.map((b) => b.out) as [string, string, string];
  const toUpstream = await larder(['push', '--json', upstream.cacheUrl, lib], { ...nix.env, LARDER_TOKEN: upstream.writeToken });
  assert.equal((JSON.parse(toUpstream.trim()) as Summary).pushed, 2);

  const summary = await pushJson(nix, server, [app]);
  assert.deepEqual([summary.pushed, summary.upstream, summary.present], [1, 2, 0], JSON.stringify(summary));
  assert.equal(await inCache(server, base), false);
  assert.equal(await inCache(server, lib), false);
  assert.ok(await inCache(server, app));

  const netrc = join(nix.dir, 'netrc');
  await writeFile(netrc, `machine 127.0.0.1 password ${server.writeToken}\n`);
  await nix.deleteLocally([app]);
  await nix.run('nix-store', ['--realise', app], {
    env: nix.withConfig([
      `substituters = ${server.cacheUrl} ${upstream.cacheUrl}`,
      'require-sigs = true',
      `trusted-public-keys = ${server.publicKey} ${upstream.publicKey}`,
      `netrc-file = ${netrc}`,
    ]),
  });
  for (const path of [base, lib, app]) assert.ok(await nix.isValid(path), path);
});

test('a path of several MiB goes up as one zstd frame per 4 MiB, and nix substitutes it', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const [text, noise] = await nix.buildClosure([
    { name: 'text', size: 9 * 1024 * 1024 + 12_345 },
    { name: 'noise', size: 5 * 1024 * 1024, random: true },
  ]);
  const summary = await pushJson(nix, server, [text!.out, noise!.out]);
  assert.deepEqual([summary.pushed, summary.failed.length], [2, 0], JSON.stringify(summary));
  const auth = { headers: { Authorization: `Bearer ${server.writeToken}` } };
  for (const path of [text!.out, noise!.out]) {
    const info = parseNarInfo(await (await fetch(`${server.cacheUrl}/${hashPart(path)}.narinfo`, auth)).text());
    const frames = new ZstdFrameSplitter();
    frames.split(Buffer.from(await (await fetch(`${server.cacheUrl}/${info.url}`, auth)).arrayBuffer()));
    frames.finish();
    assert.equal(frames.frames, Math.ceil(info.narSize / (4 * 1024 * 1024)), `${path}: frames of ${info.narSize} bytes of NAR`);
  }

  const netrc = join(nix.dir, 'netrc');
  await writeFile(netrc, `machine 127.0.0.1 password ${server.writeToken}\n`);
  await nix.deleteLocally([text!.out, noise!.out]);
  await nix.run('nix-store', ['--realise', text!.out, noise!.out], {
    env: nix.withConfig([`substituters = ${server.cacheUrl}`, 'require-sigs = true', `trusted-public-keys = ${server.publicKey}`, `netrc-file = ${netrc}`]),
  });
  for (const path of [text!.out, noise!.out]) assert.ok(await nix.isValid(path), path);
});

test('--pin keeps the pushed closure under a name, replacing the previous path of that name', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const [first, second] = await nix.buildClosure([{ name: 'build-1' }, { name: 'build-2' }]);
  const pins = async () =>
    (await (await fetch(`${server.url}/api/v1/caches/main/pins`, { headers: { Authorization: `Bearer ${server.writeToken}` } })).json()) as Array<{ name: string; storePath: string }>;
  await pushJson(nix, server, ['--pin', 'branch-main', first!.out]);
  assert.deepEqual((await pins()).map((p) => [p.name, p.storePath]), [['branch-main', first!.out]]);
  await pushJson(nix, server, ['--pin', 'branch-main', second!.out]);
  assert.deepEqual((await pins()).map((p) => [p.name, p.storePath]), [['branch-main', second!.out]]);
  const both = await larder(['push', '--pin', 'x', server.cacheUrl, first!.out, second!.out], { ...nix.env, LARDER_TOKEN: server.writeToken }).then(
    () => assert.fail('--pin with two paths must be refused'),
    (error: Error & { stderr: string }) => error.stderr,
  );
  assert.match(both, /^larder: --pin names one store path/m);
});
