// The published package, for real: `npm pack` a copy of this checkout (its
// `prepack` compiles bin/ and src/ to dist/), look inside the tarball,
// `npm install -g` it into a temporary prefix and run the installed `larder`:
// --help, keygen, serve (fetching nix-cache-info with the admin token it
// writes) and, with nix, a push through the compiled worker threads. Node
// refuses to strip types under node_modules, so this is what proves an
// installed larder runs at all.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readBanner } from '../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix } from '../helpers/nix-env.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
// Never copied: dependencies (linked instead), VCS data, build output, local state.
const NOT_COPIED = new Set(['node_modules', '.git', 'dist', 'larder-data', 'result', 'bench/work']);

// The installed bin starts with `#!/usr/bin/env node`: the Node running this test must come first.
// Under `npm test`, npm's own npm_* variables (local prefix and such) must not steer the npm run here.
const env: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_'))),
  PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
};

interface Run {
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? env, encoding: 'utf8', timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${basename(command)} ${args.join(' ')} failed (${error.code ?? error.signal}):\n${stderr}\n${stdout}`));
        else resolve({ stdout, stderr });
      },
    );
  });
}

/** npm as the caller ran it (`npm test` sets npm_execpath), else the one on PATH. */
function npm(args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  const cli = process.env.npm_execpath;
  if (cli && /npm-cli\.[cm]?js$/.test(cli)) return run(process.execPath, [cli, ...args], options);
  return run('npm', args, options);
}

let work: string;
let tarball: string;
let entries: string[];
let larderCommand: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'larder-pack-'));
  const source = join(work, 'source');
  await cp(repo, source, { recursive: true, filter: (path) => !NOT_COPIED.has(relative(repo, path)) });
  // tsc and the type declarations come from this checkout's dependencies.
  await symlink(join(repo, 'node_modules'), join(source, 'node_modules'));
  await npm(['pack', '--pack-destination', work], { cwd: source, timeoutMs: 180_000 });
  const packed = (await readdir(work)).filter((name) => name.endsWith('.tgz'));
  assert.equal(packed.length, 1, `npm pack made ${packed.join(', ') || 'no tarball'}`);
  tarball = join(work, packed[0]!);
  entries = (await run('tar', ['-tzf', tarball])).stdout
    .trim()
    .split('\n')
    .map((line) => line.replace(/^package\//, ''));
  const prefix = join(work, 'prefix');
  await npm(['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: work, timeoutMs: 300_000 });
  larderCommand = join(prefix, 'bin', 'larder');
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('the tarball holds the compiled program and documentation, not tests or sources', async () => {
  const tops = new Set(entries.map((entry) => entry.split('/')[0]));
  for (const wanted of ['package.json', 'README.md', 'dist', 'docs', 'contrib']) assert.ok(tops.has(wanted), `${wanted} is missing from the tarball`);
  for (const unwanted of ['test', 'bench', '.ci', 'src', 'bin', 'scripts', 'node_modules', 'larder-data', 'flake.nix', 'nix', 'Dockerfile']) {
    assert.ok(!tops.has(unwanted), `${unwanted} must not be published`);
  }
  // A license file is published when the repository has one.
  const license = (await readdir(repo)).find((name) => /^(LICEN[CS]E|COPYING)(\..*)?$/i.test(name));
  if (license) assert.ok(tops.has(license), `${license} is missing from the tarball`);
  assert.ok(entries.includes('dist/bin/larder.js'));
  assert.ok(entries.includes('dist/src/cli/main.js'));
  const typescript = entries.filter((entry) => /\.[cm]?ts$/.test(entry));
  assert.deepEqual(typescript, [], 'TypeScript cannot run from node_modules');
  const manifest = JSON.parse((await run('tar', ['-xzOf', tarball, 'package/package.json'])).stdout) as { bin: Record<string, string> };
  assert.deepEqual(manifest.bin, { larder: 'dist/bin/larder.js' });
});

test('the installed larder prints its help', async () => {
  const { stdout } = await run(larderCommand, ['--help']);
  assert.match(stdout, /^Usage: larder/m);
  for (const command of ['serve', 'push', 'keygen', 'token']) assert.match(stdout, new RegExp(`^\\s+${command}\\b`, 'm'));
});

test('the installed larder generates a key pair', async () => {
  const secretFile = join(work, 'key.sec');
  const publicFile = join(work, 'key.pub');
  const { stdout } = await run(larderCommand, ['keygen', 'packaging-test-1', '--secret-file', secretFile, '--public-file', publicFile]);
  assert.match(stdout, /^packaging-test-1:[A-Za-z0-9+/]{43}=\n$/);
  assert.equal(await readFile(publicFile, 'utf8'), stdout.trim());
  assert.match(await readFile(secretFile, 'utf8'), /^packaging-test-1:[A-Za-z0-9+/]{86}==$/);
});

interface Served {
  url: string;
  adminToken: string;
  writeToken: string;
  child: ChildProcess;
}

async function serveInstalled(t: TestContext): Promise<Served> {
  const dataDir = await mkdtemp(join(work, 'data-'));
  const child = spawn(larderCommand, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const banner = await readBanner(child, () => stderr, 30_000);
  // It runs the installed package, not this checkout (the re-exec for the heap flag keeps the pid).
  const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).split('\0');
  assert.ok(
    cmdline.some((arg) => arg.startsWith(join(work, 'prefix'))),
    `server command line: ${cmdline.join(' ')}`,
  );
  return {
    url: /larder serving (\S+)/.exec(banner)![1]!,
    adminToken: (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim(),
    writeToken: / password (\S+)/.exec(banner)?.[1] ?? '',
    child,
  };
}

test('the installed larder serves a cache', async (t) => {
  const server = await serveInstalled(t);
  assert.equal((await fetch(`${server.url}/main/nix-cache-info`)).status, 401);
  const response = await fetch(`${server.url}/main/nix-cache-info`, { headers: { Authorization: `Bearer ${server.adminToken}` } });
  assert.equal(response.status, 200);
  assert.match(await response.text(), /^StoreDir: \/nix\/store$/m);
});

test('the installed larder pushes a closure (compiled worker threads included)', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await serveInstalled(t);
  const nix = await nixEnv(t);
  const [, top] = await nix.buildClosure(nix.chain(2, 4096));
  await run(larderCommand, ['push', '--json', `${server.url}/main`, top!.out], { env: { ...env, ...nix.env, PATH: env.PATH, LARDER_TOKEN: server.writeToken }, timeoutMs: 120_000 });
  const hash = basename(top!.out).slice(0, 32);
  const narinfo = await fetch(`${server.url}/main/${hash}.narinfo`, { headers: { Authorization: `Bearer ${server.adminToken}` } });
  assert.equal(narinfo.status, 200);
  assert.match(await narinfo.text(), new RegExp(`^StorePath: ${top!.out}$`, 'm'));
});
