// `larder reindex` adopts a cache written by `nix copy --to file://…`; Nix
// then substitutes from larder with larder's signature required.

import assert from 'node:assert/strict';
import { cp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { larder } from '../helpers/larder-cli.ts';
import { api, startLarder } from '../helpers/larder-server.ts';
import { nixEnv, skipWithoutNix } from '../helpers/nix-env.ts';

test('reindex adopts a nix copy file:// cache, skipping what is incomplete', async (t) => {
  if (skipWithoutNix(t)) return;
  const server = await startLarder(t);
  const nix = await nixEnv(t);
  const built = await nix.buildClosure([
    { name: 'dep', size: 10_000, random: true },
    { name: 'mid', deps: ['dep'], size: 1000 },
    { name: 'top', deps: ['mid'], size: 1000 },
  ]);
  const [lonely, broken] = await nix.buildClosure([{ name: 'lonely' }, { name: 'broken-nar' }]);
  const dir = join(nix.dir, 'file-cache');
  await nix.run('nix', ['copy', '--to', `file://${dir}?compression=xz`, built.at(-1)!.out, lonely!.out, broken!.out]);
  // Break one path: its NAR goes missing.
  const narinfo = await readFile(join(dir, `${broken!.out.slice(11, 43)}.narinfo`), 'utf8');
  const url = /^URL: (.*)$/m.exec(narinfo)![1]!;
  await rm(join(dir, url));

  await cp(dir, join(server.dataDir, 'store', 'adopted'), { recursive: true });
  type Report = { indexed: number; alreadyIndexed: number; skipped: Array<{ key: string; reason: string }> };
  const reindex = () =>
    larder(['reindex', '--json', '--cache', 'adopted', '--data', server.dataDir]).then(
      () => assert.fail('a skipped path must make reindex exit non-zero'),
      (error: Error & { stdout: string; code: number }) => ({ code: error.code, report: JSON.parse(error.stdout) as Report }),
    );
  const first = await reindex();
  assert.equal(first.code, 2);
  assert.equal(first.report.indexed, 4, 'dep, mid, top and lonely');
  const { report: again } = await reindex();
  assert.equal(again.indexed, 0, 'a second run indexes nothing new');
  assert.equal(again.alreadyIndexed, 4);
  assert.equal(again.skipped.length, 1);
  assert.match(again.skipped[0]!.reason, /its NAR nar\/\S+\.nar\.xz is missing/);

  const info = (await (await api(server, '/api/v1/caches/adopted')).json()) as { publicKeys: string[] };
  const token = ((await (await api(server, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ cache: 'adopted', permission: 'read' }) })).json()) as { token: string }).token;
  const netrc = await nix.netrc(server.url, token);
  await nix.deleteLocally([built.at(-1)!.out, lonely!.out]);
  await nix.run('nix-store', ['--realise', built.at(-1)!.out, lonely!.out], {
    env: nix.withConfig([`substituters = ${server.url}/adopted`, 'require-sigs = true', `trusted-public-keys = ${info.publicKeys.join(' ')}`, `netrc-file = ${netrc}`]),
  });
  for (const path of [...built.map((b) => b.out), lonely!.out]) assert.ok(await nix.isValid(path), path);
});
