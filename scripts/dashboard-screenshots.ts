// `node scripts/dashboard-screenshots.ts [OUT_DIR]`: the PNGs in
// docs/screenshots/. Starts a larder in this process on a fresh data directory,
// fills it the way a team would over a month (pushes over HTTP, substitutions
// and misses, a pin, a size limit, tokens, a key rotation), then has Debian's
// Chromium (headless, through playwright-core) sign in and capture each page.
//
// The month is simulated: the larder's clock (access times, usage days, size
// samples) starts 29 days ago and is moved a day at a time, the counts written
// and the size sampled at the end of each day exactly as the server's timer
// does; pushes themselves are stamped with the real time. Sample contents are
// text files of the sizes given, not real packages.

import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openSqliteIndex } from '../src/index/sql-index.ts';
import { createCache, rotateKey, updateCache } from '../src/services/cache-admin.ts';
import { assembleLarder, initializeIfEmpty } from '../src/services/larder.ts';
import { setPin } from '../src/services/pins.ts';
import { createLarderServer } from '../src/server/server.ts';
import { FilesystemStore } from '../src/storage/filesystem-store.ts';
import { chromiumInstalled, CHROMIUM, launchChromium } from '../test/dashboard/chromium.ts';
import { askMissing, download, pushSamples, type PushedPath, type SamplePath } from '../test/dashboard/sample-uploads.ts';

const DAY = 86_400_000;
const KiB = 1024;

const outDir = resolve(process.argv[2] ?? join(import.meta.dirname, '..', 'docs', 'screenshots'));
const dataDir = await mkdtemp(join(tmpdir(), 'larder-screenshots-'));
let now = Date.now() - 29 * DAY;

/** A small deterministic generator, so that every run draws the same month. */
let seed = 42;
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}

const BASE: SamplePath[] = [
  { name: 'glibc-2.40-66', size: 620 * KiB },
  { name: 'gcc-13.3.0-lib', size: 310 * KiB, refs: ['glibc-2.40-66'] },
  { name: 'zlib-1.3.1', size: 40 * KiB, refs: ['glibc-2.40-66'] },
  { name: 'openssl-3.3.2', size: 260 * KiB, refs: ['glibc-2.40-66'] },
  { name: 'bash-5.2p37', size: 180 * KiB, refs: ['glibc-2.40-66'] },
  { name: 'coreutils-9.5', size: 240 * KiB, refs: ['glibc-2.40-66', 'openssl-3.3.2'] },
  { name: 'python3-3.12.7', size: 900 * KiB, refs: ['glibc-2.40-66', 'zlib-1.3.1', 'openssl-3.3.2', 'bash-5.2p37'] },
  { name: 'curl-8.10.1', size: 120 * KiB, refs: ['glibc-2.40-66', 'openssl-3.3.2', 'zlib-1.3.1'] },
  { name: 'git-2.47.0', size: 520 * KiB, refs: ['curl-8.10.1', 'python3-3.12.7', 'bash-5.2p37'] },
  { name: 'nodejs-22.11.0', size: 1100 * KiB, refs: ['gcc-13.3.0-lib', 'openssl-3.3.2', 'zlib-1.3.1'] },
  { name: 'postgresql-16.4', size: 700 * KiB, refs: ['openssl-3.3.2', 'zlib-1.3.1', 'gcc-13.3.0-lib'] },
];

async function main(): Promise<void> {
  if (!chromiumInstalled()) throw new Error(`${CHROMIUM} is not installed (apt-get install chromium)`);
  const index = await openSqliteIndex(join(dataDir, 'index.sqlite'));
  const store = await FilesystemStore.open(join(dataDir, 'store'));
  const larder = assembleLarder(index, store, {
    storeDir: '/nix/store',
    keyNamePrefix: 'cache.example.org-',
    maxNarSize: 2 ** 30,
    maxSmallBodySize: 16 * 2 ** 20,
    now: () => now,
  });
  const first = await initializeIfEmpty(larder, join(dataDir, 'admin-token'));
  if (!first) throw new Error('a fresh data directory was expected');
  await createCache(larder, 'public', { public: true, priority: 30 });
  await createCache(larder, 'ci', {});
  const server = createLarderServer(larder);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const adminToken = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
  const main = `${url}/main`;
  const write = first.writeToken;

  try {
    // A month of a team's cache: the base closure on day one, then builds of the team's app.
    const pushed = await pushSamples(main, write, BASE);
    const publicPushed = await pushSamples(`${url}/public`, adminToken, BASE.slice(0, 4));
    await pushSamples(`${url}/ci`, adminToken, [{ name: 'ci-toolchain-1', size: 300 * KiB }]);
    const popularity = [...pushed.values()];
    for (let day = 0; day < 30; day++) {
      const builds: SamplePath[] = [];
      const count = 1 + Math.floor(random() * 3);
      for (let b = 0; b < count; b++) {
        builds.push({
          name: `myapp-1.${day}.${b}`,
          size: Math.round((150 + random() * 450) * KiB),
          refs: random() < 0.5 ? ['python3-3.12.7', 'postgresql-16.4'] : ['nodejs-22.11.0', 'openssl-3.3.2'],
        });
      }
      await pushSamples(main, write, builds, pushed);
      popularity.push(...builds.map((b) => pushed.get(b.name)!));
      // Substitutions: the base closure most, recent builds often, old ones seldom.
      const downloads = 8 + Math.floor(random() * 18);
      for (let d = 0; d < downloads; d++) {
        const pick: PushedPath = random() < 0.6 ? popularity[Math.floor(random() * BASE.length)]! : popularity[popularity.length - 1 - Math.floor(random() * Math.min(6, popularity.length))]!;
        await download(main, write, pick);
      }
      for (let m = Math.floor(random() * 6); m > 0; m--) await askMissing(main, write);
      for (let d = Math.floor(random() * 5); d > 0; d--) await download(`${url}/public`, undefined, [...publicPushed.values()][Math.floor(random() * 4)]!);
      await larder.accesses.flush();
      await larder.accesses.sampleSizes();
      if (day < 29) now += DAY;
    }

    const latest = [...pushed.values()].filter((p) => p.name.startsWith('myapp-')).at(-1)!;
    await setPin(larder, 'main', 'production', latest.storePath);
    await setPin(larder, 'main', 'staging', [...pushed.values()].filter((p) => p.name.startsWith('myapp-')).at(-3)!.storePath);
    const totals = await index.cacheTotals('main');
    await updateCache(larder, 'main', { retentionMs: 14 * DAY, maxSize: Math.round(totals.fileBytes * 0.6) });
    await rotateKey(larder, 'main');
    for (const [label, permission, expiresAt] of [
      ['ci runner', 'write', null],
      ["alice's laptop", 'read', now + 90 * DAY],
      ['old deploy key', 'read', null],
    ] as const) {
      const { record } = await larder.tokens.issue({ cache: 'main', permission, label, expiresAt });
      if (label === 'old deploy key') await larder.tokens.revoke(record.id);
    }
    const cacheAdmin = (await larder.tokens.issue({ cache: 'main', permission: 'admin', label: 'ops' })).token;

    await mkdir(outDir, { recursive: true });
    await capture(url, adminToken, cacheAdmin, pushed);
    process.stdout.write(`screenshots written to ${outDir}\n`);
  } finally {
    server.close();
    server.closeAllConnections();
    await larder.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function capture(url: string, adminToken: string, cacheAdmin: string, pushed: Map<string, PushedPath>): Promise<void> {
  const { browser, context } = await launchChromium();
  try {
    const page = await context.newPage();
    const shot = async (name: string, fullPage = true) => {
      await page.screenshot({ path: join(outDir, `${name}.png`), fullPage });
      process.stdout.write(`  ${name}.png\n`);
    };
    const signIn = async (token: string) => {
      await page.goto(`${url}/ui/login`);
      await page.fill('input[name=token]', token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${url}/`);
    };
    await page.goto(`${url}/ui/login`);
    await shot('sign-in', false);
    await signIn(adminToken);
    await shot('overview');
    await page.goto(`${url}/ui/caches/main`);
    await shot('cache');
    await page.goto(`${url}/ui/caches/main/search?q=py`);
    await shot('search');
    await page.goto(`${url}/ui/caches/main/paths/${pushed.get('python3-3.12.7')!.hashPart}`);
    await shot('path');
    await page.goto(`${url}/ui/caches/main/gc`);
    await shot('gc-preview');
    await page.goto(`${url}/ui/caches/main/keys`);
    await shot('keys');
    // The token page as a cache admin sees it right after creating one: the only time it is shown.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(cacheAdmin);
    await page.goto(`${url}/ui/caches/main/tokens`);
    await page.fill('input[name=label]', 'release pipeline');
    await page.selectOption('select[name=permission]', 'write');
    await page.fill('input[name=expires]', '90d');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.waitForSelector('#new-token-value');
    await shot('token-created');
  } finally {
    await browser.close();
  }
}

process.on('unhandledRejection', (error) => {
  process.stderr.write(`dashboard-screenshots: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
await main();
