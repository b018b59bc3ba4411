// larder's Nix files: every .nix file parses; nix/npm-lock.nix gives every
// registry package of package-lock.json its download URL (the offline Nix
// build needs one per package); and, with the nixpkgs `lib` at hand, the
// NixOS module, the flake's outputs and the package are evaluated by the real
// module system (test/packaging/nix-eval.nix stands in for the NixOS options
// and nixpkgs builders they use). Nothing here builds: that needs nixpkgs and
// the network (`nix build`, `nix flake check`).

import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { skipWithoutNix } from '../helpers/nix-env.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist', 'result', 'larder-data', 'bench/work']);

function nixFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return SKIPPED_DIRS.has(relative(repo, path)) ? [] : nixFiles(path);
    return entry.name.endsWith('.nix') ? [path] : [];
  });
}

function nix(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('nix-instantiate', args, { cwd: repo, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`nix-instantiate ${args.join(' ')} failed:\n${stderr}`));
      else resolve(stdout);
    });
  });
}

test('every .nix file in the repository parses', async (t) => {
  if (skipWithoutNix(t)) return;
  const files = nixFiles(repo);
  for (const expected of ['flake.nix', 'nix/module.nix', 'nix/package.nix', 'nix/npm-lock.nix']) {
    assert.ok(files.includes(join(repo, expected)), `${expected} is missing`);
  }
  for (const file of files) {
    await t.test(relative(repo, file), async () => {
      await nix(['--parse', file]);
    });
  }
});

interface LockPackage {
  version?: string;
  name?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  inBundle?: boolean;
}

async function withRegistryUrls(lock: unknown): Promise<Record<string, LockPackage>> {
  const expression = `import ./nix/npm-lock.nix { } (builtins.fromJSON ${JSON.stringify(JSON.stringify(lock))})`;
  const result = JSON.parse(await nix(['--eval', '--strict', '--json', '-E', expression])) as { packages: Record<string, LockPackage> };
  return result.packages;
}

test('nix/npm-lock.nix gives every registry package of package-lock.json its tarball URL', async (t) => {
  if (skipWithoutNix(t)) return;
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> };
  const packages = await withRegistryUrls(lock);
  assert.deepEqual(Object.keys(packages).sort(), Object.keys(lock.packages).sort());
  for (const [path, original] of Object.entries(lock.packages)) {
    const patched = packages[path]!;
    if (path === '') {
      assert.equal(patched.resolved, undefined);
      continue;
    }
    if (original.link) continue;
    // The registry's layout: <registry>/<name>/-/<name without scope>-<version>.tgz
    const name = original.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const expected = original.resolved ?? `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${original.version}.tgz`;
    assert.equal(patched.resolved, expected, path);
    assert.equal(patched.integrity, original.integrity, `${path}: the integrity hash must stay`);
  }
});

test('nix/npm-lock.nix handles scopes, nesting, aliases and what is not from the registry', async (t) => {
  if (skipWithoutNix(t)) return;
  const packages = await withRegistryUrls({
    lockfileVersion: 3,
    packages: {
      '': { name: 'x', version: '1.0.0' },
      'node_modules/@scope/pkg': { version: '2.0.0', integrity: 'sha512-a' },
      'node_modules/a/node_modules/b': { version: '3.0.0', integrity: 'sha512-b' },
      'node_modules/alias': { name: 'real', version: '4.0.0', integrity: 'sha512-c' },
      'node_modules/has-url': { version: '5.0.0', resolved: 'https://mirror.example/has-url.tgz', integrity: 'sha512-d' },
      'node_modules/linked': { resolved: 'packages/linked', link: true },
      'node_modules/bundled': { version: '6.0.0', inBundle: true },
    },
  });
  assert.equal(packages['node_modules/@scope/pkg']!.resolved, 'https://registry.npmjs.org/@scope/pkg/-/pkg-2.0.0.tgz');
  assert.equal(packages['node_modules/a/node_modules/b']!.resolved, 'https://registry.npmjs.org/b/-/b-3.0.0.tgz');
  assert.equal(packages['node_modules/alias']!.resolved, 'https://registry.npmjs.org/real/-/real-4.0.0.tgz');
  assert.equal(packages['node_modules/has-url']!.resolved, 'https://mirror.example/has-url.tgz');
  assert.equal(packages['node_modules/linked']!.resolved, 'packages/linked');
  assert.equal(packages['node_modules/bundled']!.resolved, undefined);
  assert.equal(packages['']!.resolved, undefined);
});

/**
 * nixpkgs' lib/ directory: LARDER_NIXPKGS_LIB (nixpkgs or its lib/, e.g. a
 * checkout of nix-community/nixpkgs.lib), else <nixpkgs> from NIX_PATH.
 */
function findNixpkgsLib(): string | undefined {
  const candidates: string[] = [];
  if (process.env.LARDER_NIXPKGS_LIB) candidates.push(process.env.LARDER_NIXPKGS_LIB);
  const found = spawnSync('nix-instantiate', ['--find-file', 'nixpkgs'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) candidates.push(found.stdout.trim());
  for (const candidate of candidates) {
    for (const dir of [join(candidate, 'lib'), candidate]) {
      if (existsSync(join(dir, 'modules.nix')) && existsSync(join(dir, 'default.nix'))) return dir;
    }
  }
  return undefined;
}

let evaluated: Promise<Evaluated> | undefined;

/** Everything nix-eval.nix reports, evaluated once; undefined (and the test skipped) without nixpkgs' lib. */
async function evaluation(t: TestContext): Promise<Evaluated | undefined> {
  if (skipWithoutNix(t)) return undefined;
  const lib = findNixpkgsLib();
  if (!lib) {
    t.skip('nixpkgs lib not found: set LARDER_NIXPKGS_LIB to nixpkgs (or its lib/) or put nixpkgs on NIX_PATH; the files were only parsed');
    return undefined;
  }
  evaluated ??= nix([
    '--eval',
    '--strict',
    '--json',
    // The stand-in pkgs.formats.toml writes its file with builtins.toFile, which the test reads back.
    '--read-write-mode',
    'test/packaging/nix-eval.nix',
    '--arg',
    'lib',
    `import ${JSON.stringify(lib)}`,
    '--argstr',
    'repo',
    repo,
  ]).then((json) => JSON.parse(json) as Evaluated);
  return evaluated;
}

type ServiceConfig = Record<string, string | number | boolean | string[]>;

interface ModuleResult {
  failedAssertions: string[];
  warnings: string[];
  systemPackages: string[];
  firewallPorts: number[];
  postgresql: { enable: boolean; ensureDatabases: string[]; ensureUsers: { name: string; ensureDBOwnership: boolean }[]; settings: { port: number } };
  settings: Record<string, unknown>;
  unit: null | {
    wantedBy: string[];
    wants: string[];
    requires: string[];
    after: string[];
    serviceConfig: ServiceConfig;
    configFile: Record<string, unknown> | null;
  };
}

interface Evaluated {
  module: {
    disabled: ModuleResult;
    defaults: ModuleResult;
    public: ModuleResult;
    loopbackFirewall: ModuleResult;
    badListen: ModuleResult;
    localDatabase: ModuleResult;
    localDatabaseOverridden: ModuleResult;
    environmentFileAsPath: boolean;
    viaFlake: ModuleResult;
  };
  flake: {
    outputs: string[];
    packages: Record<string, string[]>;
    devShells: Record<string, string[]>;
    checks: Record<string, string[]>;
    nixosModules: string[];
    devShellPackages: string[];
    overlayLarder: string;
    nixosTest: string;
  };
  package: {
    name: string;
    pname: string;
    version: string;
    nodejs: string;
    configHook: string;
    npmPackFlags: string[];
    buildPhase: string;
    postInstall: string;
    doInstallCheck: boolean;
    installCheckPhase: string;
    mainProgram: string;
    license: string;
    packageName: string;
    packagesWithoutUrl: string[];
    sourceRoot: boolean;
    source: { path: string; optional: boolean; exists: boolean }[];
  };
}

/** contrib/larder.service's [Service] directives, as systemd reads them. */
function contribService(): Map<string, string> {
  const text = readFileSync(join(repo, 'contrib', 'larder.service'), 'utf8');
  const section = text.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!;
  const directives = new Map<string, string>();
  for (const line of section.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match) directives.set(match[1]!, match[2]!);
  }
  return directives;
}

/** A NixOS serviceConfig value as it lands in the unit file. */
function asSystemd(value: string | number | boolean | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (Array.isArray(value)) return value.join(' ');
  return String(value);
}

test('the NixOS module: a hardened service like contrib/larder.service, settings rendered to larder.toml', async (t) => {
  const e = await evaluation(t);
  if (!e) return;
  const { disabled, defaults } = e.module;
  assert.equal(disabled.unit, null, 'nothing runs unless enabled');
  assert.deepEqual(disabled.systemPackages, []);

  assert.deepEqual(defaults.failedAssertions, []);
  assert.deepEqual(defaults.warnings, []);
  const unit = defaults.unit!;
  assert.deepEqual(unit.wantedBy, ['multi-user.target']);
  assert.ok(unit.after.includes('network-online.target'));
  const config = unit.serviceConfig;
  assert.match(String(config.ExecStart), /^\/nix\/store\/\S+-larder-from-pkgs\/bin\/larder serve --config \/nix\/store\/\S+-larder\.toml$/);
  assert.deepEqual(unit.configFile, { listen: '127.0.0.1:8080', 'data-dir': '/var/lib/larder' });
  assert.equal(config.EnvironmentFile, undefined);
  assert.deepEqual(defaults.firewallPorts, []);
  assert.equal(defaults.postgresql.enable, false);
  assert.deepEqual(defaults.systemPackages, ['larder-from-pkgs']);

  // Every directive of the hand-written unit, but where it starts larder from and how it passes settings.
  const contrib = contribService();
  for (const ignored of ['ExecStart', 'EnvironmentFile', 'Environment']) contrib.delete(ignored);
  assert.ok(contrib.size >= 15, `contrib/larder.service has only ${[...contrib.keys()].join(', ')}`);
  for (const [key, value] of contrib) assert.equal(asSystemd(config[key]), value, `serviceConfig.${key}`);
  assert.equal(config.User, 'larder', 'the dynamic user is named larder, for PostgreSQL peer authentication');
  assert.equal(asSystemd(config.MemoryDenyWriteExecute), undefined, "V8's JIT needs writable executable memory");
});

test('the NixOS module: settings, firewall, secrets and refusals', async (t) => {
  const e = await evaluation(t);
  if (!e) return;
  const { public: open, loopbackFirewall, badListen, environmentFileAsPath } = e.module;
  assert.deepEqual(open.failedAssertions, []);
  assert.deepEqual(open.firewallPorts, [9000]);
  assert.equal(open.unit!.serviceConfig.EnvironmentFile, '/run/secrets/larder.env');
  assert.deepEqual(open.unit!.configFile, {
    listen: '[::]:9000',
    'data-dir': '/var/lib/larder',
    'public-url': 'https://cache.example.org',
    workers: 4,
    storage: { type: 's3', bucket: 'example-nix-cache', 'path-style': true },
  });

  assert.deepEqual(loopbackFirewall.firewallPorts, [8080]);
  assert.equal(loopbackFirewall.warnings.length, 1);
  assert.match(loopbackFirewall.warnings[0]!, /accepts connections from this machine only/);

  assert.equal(badListen.failedAssertions.length, 1);
  assert.match(badListen.failedAssertions[0]!, /settings\.listen must be HOST:PORT/);

  assert.equal(environmentFileAsPath, false, 'a Nix path (copied into the world-readable store) is refused for environmentFile');
});

test('the NixOS module: database.createLocally uses a local PostgreSQL over its socket', async (t) => {
  const e = await evaluation(t);
  if (!e) return;
  const { localDatabase, localDatabaseOverridden } = e.module;
  assert.deepEqual(localDatabase.failedAssertions, []);
  assert.equal(localDatabase.postgresql.enable, true);
  assert.deepEqual(localDatabase.postgresql.ensureDatabases, ['larder']);
  assert.deepEqual(localDatabase.postgresql.ensureUsers, [{ name: 'larder', ensureDBOwnership: true }]);
  assert.deepEqual(localDatabase.unit!.configFile!.index, {
    type: 'postgres',
    url: 'postgresql:///larder?host=/run/postgresql&user=larder&port=5433',
  });
  assert.ok(localDatabase.unit!.requires.includes('postgresql.service'));
  for (const unit of ['postgresql.service', 'postgresql-setup.service', 'postgresql.target']) {
    assert.ok(localDatabase.unit!.after.includes(unit), `after ${unit}`);
  }
  // The user's own URL wins over the default.
  assert.equal((localDatabaseOverridden.unit!.configFile!.index as { url: string }).url, 'postgresql:///other?host=/run/postgresql');
});

test('the flake: packages, devShell, overlay, NixOS module and checks', async (t) => {
  const e = await evaluation(t);
  if (!e) return;
  const f = e.flake;
  assert.deepEqual(f.outputs, ['checks', 'devShells', 'nixosModules', 'overlays', 'packages']);
  for (const system of ['x86_64-linux', 'aarch64-linux', 'x86_64-darwin', 'aarch64-darwin']) {
    assert.deepEqual(f.packages[system], ['default', 'larder']);
    assert.deepEqual(f.devShells[system], ['default']);
    assert.ok(f.checks[system]!.includes('package'));
  }
  assert.deepEqual(f.devShellPackages, ['nodejs-24', 'nix', 'bzip2']);
  assert.deepEqual(f.nixosModules, ['default', 'larder']);
  assert.equal(f.overlayLarder, 'larder-0.1.0');
  assert.equal(f.nixosTest, 'larder');
  // Through the flake's module, the package is the flake's own build.
  assert.deepEqual(e.module.viaFlake.systemPackages, ['larder-0.1.0']);
  assert.match(String(e.module.viaFlake.unit!.serviceConfig.ExecStart), /-larder-0\.1\.0\/bin\/larder serve --config /);
});

test('the package: Node 24, dependencies from the lockfile, the same build as npm pack', async (t) => {
  const e = await evaluation(t);
  if (!e) return;
  const p = e.package;
  const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { name: string; version: string; license: string };
  assert.equal(p.pname, manifest.name);
  assert.equal(p.version, manifest.version);
  assert.equal(p.license, manifest.license);
  assert.equal(p.packageName, manifest.name);
  assert.equal(p.nodejs, 'nodejs-24');
  assert.equal(p.configHook, 'import-npm-lock-config-hook');
  assert.deepEqual(p.packagesWithoutUrl, [], 'every package needs a URL for the offline build');
  assert.match(p.buildPhase, /\/bin\/node scripts\/build\.ts\n/);
  assert.deepEqual(p.npmPackFlags, ['--ignore-scripts']);
  assert.match(p.postInstall, /wrapProgram \$out\/bin\/larder --prefix PATH : \S+-bzip2\/bin/);
  assert.equal(p.doInstallCheck, true);
  assert.match(p.installCheckPhase, /\$out\/bin\/larder --help/);
  assert.equal(p.mainProgram, 'larder');
  assert.ok(p.sourceRoot, 'the source is taken relative to the repository root');
  const missing = p.source.filter((s) => !s.exists && !s.optional).map((s) => s.path);
  assert.deepEqual(missing, [], 'files named in nix/package.nix must exist');
  // What scripts/build.ts and tsconfig.build.json read must be in the build's source.
  const paths = p.source.map((s) => s.path);
  for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.ts', 'bin', 'src']) {
    assert.ok(paths.includes(needed), `${needed} is not in the package's source`);
  }
});
