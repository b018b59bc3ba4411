// Signatures and keys against the real nix: the same key gives the same Sig,
// keys travel both ways, and narinfos larder signs pass `nix store verify`.

import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fingerprint, signNarInfo, validSigners } from '../../src/nix/fingerprint.ts';
import { parseHash } from '../../src/nix/hash.ts';
import { formatNarInfo, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { parsePublicKey, parseSecretKey, signMessage, trustedKeyMap } from '../../src/nix/signing-key.ts';
import { parseStorePath } from '../../src/nix/store-path.ts';
import { nixEnv, skipWithoutNix, type NixEnv } from '../helpers/nix-env.ts';
import { larder } from '../helpers/larder-cli.ts';

interface PathInfoJson {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  signatures?: string[];
}

async function pathInfo(nix: NixEnv, paths: string[]): Promise<PathInfoJson[]> {
  return JSON.parse((await nix.run('nix', ['path-info', '--json', '--sigs', ...paths])).stdout) as PathInfoJson[];
}

function asSignable(info: PathInfoJson): Pick<NarInfo, 'storePath' | 'narHash' | 'narSize' | 'references'> {
  return {
    storePath: parseStorePath(info.path),
    narHash: parseHash(info.narHash),
    narSize: info.narSize,
    references: info.references.map((r) => parseStorePath(r)),
  };
}

test('a key from nix-store --generate-binary-cache-key signs exactly as nix store sign does', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const [secretFile, publicFile] = [join(nix.dir, 'sk'), join(nix.dir, 'pk')];
  await nix.run('nix-store', ['--generate-binary-cache-key', `nixkey-${nix.nonce}`, secretFile, publicFile]);
  const built = await nix.buildClosure(nix.chain(3));
  const paths = built.map((b) => b.out);
  await nix.run('nix', ['store', 'sign', '--key-file', secretFile, ...paths]);

  const key = parseSecretKey(await readFile(secretFile, 'utf8'));
  assert.equal(`${key.name}:${key.publicKey.bytes.toString('base64')}`, await readFile(publicFile, 'utf8'));
  for (const info of await pathInfo(nix, paths)) {
    const ours = signMessage(key, fingerprint(asSignable(info)));
    assert.ok(info.signatures?.includes(ours), `${info.path}: nix recorded ${info.signatures}, larder made ${ours}`);
  }
});

test('a key from larder keygen is accepted by nix store sign, and larder verifies its signatures', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const [secretFile, publicFile] = [join(nix.dir, 'sk'), join(nix.dir, 'pk')];
  const printed = await larder(['keygen', `larderkey-${nix.nonce}`, '--secret-file', secretFile, '--public-file', publicFile]);
  assert.equal(printed.trim(), await readFile(publicFile, 'utf8'));
  const built = await nix.buildClosure(nix.chain(2));
  const paths = built.map((b) => b.out);
  await nix.run('nix', ['store', 'sign', '--key-file', secretFile, ...paths]);

  const trusted = trustedKeyMap([parsePublicKey(await readFile(publicFile, 'utf8'))]);
  for (const info of await pathInfo(nix, paths)) {
    const signable = { ...asSignable(info), sigs: info.signatures ?? [] };
    assert.deepEqual(validSigners(signable, trusted), [`larderkey-${nix.nonce}`]);
  }
  // nix itself trusts the key: in a file:// cache (where local builds are not "ultimate"),
  // verification passes with it and fails without it.
  const store = `file://${join(nix.dir, 'cache')}`;
  await nix.run('nix', ['copy', '--to', store, ...paths]);
  await nix.run('nix', ['store', 'verify', '--store', store, '--trusted-public-keys', printed.trim(), ...paths]);
  await assert.rejects(nix.run('nix', ['store', 'verify', '--store', store, '--trusted-public-keys', '', ...paths]), /untrusted|no signatures|lacks a signature/);
});

test('narinfos signed by larder in a file:// cache pass nix store verify', async (t) => {
  if (skipWithoutNix(t)) return;
  const nix = await nixEnv(t);
  const [secretFile, publicFile] = [join(nix.dir, 'sk'), join(nix.dir, 'pk')];
  await larder(['keygen', `signer-${nix.nonce}`, '--secret-file', secretFile, '--public-file', publicFile]);
  const key = parseSecretKey(await readFile(secretFile, 'utf8'));
  const publicKey = await readFile(publicFile, 'utf8');
  const built = await nix.buildClosure(nix.chain(3));
  const cache = join(nix.dir, 'cache');
  await nix.run('nix', ['copy', '--to', `file://${cache}?compression=zstd`, built.at(-1)!.out]);

  const store = `file://${cache}`;
  const verify = () => nix.run('nix', ['store', 'verify', '--store', store, '--trusted-public-keys', publicKey, ...built.map((b) => b.out)]);
  await assert.rejects(verify(), /no signatures|untrusted|lacks a signature/, 'unsigned paths must fail verification first');

  for (const name of (await readdir(cache)).filter((n) => n.endsWith('.narinfo'))) {
    const file = join(cache, name);
    await writeFile(file, formatNarInfo(signNarInfo(parseNarInfo(await readFile(file, 'utf8')), [key])));
  }
  await verify();
});
