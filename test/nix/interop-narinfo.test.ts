// Every narinfo that `nix copy --to file://…` writes parses and re-serializes
// byte for byte: references, deriver, CA, several signatures, each compression.

import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatNarInfo, parseNarInfo } from '../../src/nix/narinfo.ts';
import { nixEnv, skipWithoutNix } from '../helpers/nix-env.ts';

test('narinfos written by nix copy round-trip byte-identically', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const built = await nix.buildClosure([
    { name: 'leaf', size: 100 },
    { name: 'blob', size: 20000, random: true, file: true },
    { name: 'top', deps: ['leaf', 'blob'], size: 5000 },
  ]);
  const source = join(nix.dir, 'source');
  await mkdir(join(source, 'sub'), { recursive: true });
  await writeFile(join(source, 'sub', 'f'), `content ${nix.nonce}\n`);
  const added = (await nix.run('nix-store', ['--add', source])).stdout.trim();

  const keys = ['one', 'two'].map((k) => join(nix.dir, `${k}.sk`));
  for (const [i, key] of keys.entries()) {
    await nix.run('nix-store', ['--generate-binary-cache-key', `k${i}-${nix.nonce}`, key, `${key}.pub`]);
  }
  const paths = [...built.map((b) => b.out), added];
  const drv = built.at(-1)!.drv;
  for (const key of keys) await nix.run('nix', ['store', 'sign', '--key-file', key, ...built.map((b) => b.out)]);

  const seen = { references: 0, deriver: 0, ca: 0, sigs: 0 };
  for (const compression of ['none', 'xz', 'zstd']) {
    const cache = join(nix.dir, `cache-${compression}`);
    const to = `file://${cache}?compression=${compression}`;
    await nix.run('nix', ['copy', '--to', to, ...paths]);
    // A .drv installable means its outputs to `nix copy`; --derivation copies the file itself.
    await nix.run('nix', ['copy', '--derivation', '--to', to, drv]);
    const names = (await readdir(cache)).filter((n) => n.endsWith('.narinfo'));
    assert.ok(names.length >= paths.length + 1, `expected a narinfo per path in ${cache}`);
    for (const name of names) {
      const text = await readFile(join(cache, name), 'utf8');
      const info = parseNarInfo(text);
      assert.equal(formatNarInfo(info), text, `${compression}/${name} did not round-trip`);
      assert.equal(info.compression, compression);
      assert.equal(`${info.storePath.hashPart}.narinfo`, name);
      if (info.references.length > 0) seen.references++;
      if (info.deriver) seen.deriver++;
      if (info.ca) seen.ca++;
      if (info.sigs.length >= 2) seen.sigs++;
    }
  }
  // The corpus really covered each feature, in each of the three caches.
  assert.ok(seen.references >= 3 && seen.deriver >= 3 && seen.ca >= 6 && seen.sigs >= 9, JSON.stringify(seen));
});
