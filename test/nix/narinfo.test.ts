import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fingerprint, validSigners } from '../../src/nix/fingerprint.ts';
import { formatNarInfo, NarInfoError, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { parsePublicKey, trustedKeyMap } from '../../src/nix/signing-key.ts';
import { encodeNix32, NIX32_ALPHABET } from '../../src/nix/nix32.ts';

// Written by Nix 2.8 (`nix copy --to file://…?compression=zstd`), from the protocol reference.
const example = `StorePath: /nix/store/xwcj2425qhak961159fdhpd5v35ihakr-b.txt
URL: nar/00vlpw3g7bmfxm73xwahbddn3yl0x396vaq7bvhlbk6d49ig54sd.nar.zst
Compression: zstd
FileHash: sha256:00vlpw3g7bmfxm73xwahbddn3yl0x396vaq7bvhlbk6d49ig54sd
FileSize: 168
NarHash: sha256:1aiwgkgs6pd5pwnpil7mxw87k1w4k43yx0sb3fwanyfbrypimsmn
NarSize: 224
References: l82nr4gna33sc2g8m4hkkr6r983dlbd6-a.txt xix8gd1418fzyw31crmw111lc5lcdmx4-0zz.txt
Sig: test-cache-1:UO49N4NX9loqaEyFVOu7bvQq6ZyUlaTew8Aw+GmYN4gTmS42H+OUdBCWzjblU3td7q/Bk6IQDFpoMCrfCI63Ag==
CA: text:sha256:06p0y2qyrvvf97rlj62alpq6c2674ifrd5zv01ck3lq22hgfbcwk
`;
const examplePublicKey = 'test-cache-1:Gx5oTjZAnq6jfS7gMhjUjfgTPV1KwRB6xzf3SNtNUnc=';

test('parses and re-serializes a Nix-written narinfo byte for byte', () => {
  const info = parseNarInfo(example);
  assert.equal(info.storePath.name, 'b.txt');
  assert.equal(info.narSize, 224);
  assert.equal(info.fileSize, 168);
  assert.equal(info.references.length, 2);
  assert.equal(info.ca?.method, 'text');
  assert.equal(formatNarInfo(info), example);
});

test('the fingerprint and signature match the reference example', () => {
  const info = parseNarInfo(example);
  assert.equal(
    fingerprint(info),
    '1;/nix/store/xwcj2425qhak961159fdhpd5v35ihakr-b.txt;sha256:1aiwgkgs6pd5pwnpil7mxw87k1w4k43yx0sb3fwanyfbrypimsmn;224;' +
      '/nix/store/l82nr4gna33sc2g8m4hkkr6r983dlbd6-a.txt,/nix/store/xix8gd1418fzyw31crmw111lc5lcdmx4-0zz.txt',
  );
  const trusted = trustedKeyMap([parsePublicKey(examplePublicKey)]);
  assert.deepEqual(validSigners(info, trusted), ['test-cache-1']);
  const tampered = { ...info, narSize: 225 };
  assert.deepEqual(validSigners(tampered, trusted), []);
  assert.deepEqual(validSigners(info, trustedKeyMap([])), [], 'an unknown key name is not a valid signature');
});

test('a narinfo without references writes "References: " with the trailing space', () => {
  const text = example.replace(/^References: .*$/m, 'References: ');
  assert.equal(parseNarInfo(text).references.length, 0);
  assert.equal(formatNarInfo(parseNarInfo(text)), text);
});

test('follows Nix: missing Compression is bzip2, unknown keys ignored, Sig accumulates, deriver', () => {
  const text = example
    .replace('Compression: zstd\n', '')
    .replace('CA:', 'Future: thing\nSig: other-1:' + 'A'.repeat(86) + '==\nDeriver: 5vdc7c0ykpsszj1lg4j8gc842425805z-b.drv\nCA:');
  const info = parseNarInfo(text);
  assert.equal(info.compression, 'bzip2');
  assert.equal(info.sigs.length, 2);
  assert.equal(info.deriver?.name, 'b.drv');
  assert.match(formatNarInfo(info), /References: .*\nDeriver: 5vdc7c0ykpsszj1lg4j8gc842425805z-b\.drv\nSig: other-1:A+==\nSig: test-cache-1:/);
  assert.equal(parseNarInfo(example.replace('References', 'Deriver: unknown-deriver\nReferences')).deriver, undefined);
});

test('an empty References line before a full one is accepted, as Nix does', () => {
  const text = example.replace('References:', 'References: \nReferences:');
  assert.equal(parseNarInfo(text).references.length, 2);
});

const malformed: Array<[string, string, RegExp]> = [
  ['no space after the colon', example.replace('NarSize: 224', 'NarSize:224'), /^line 7, field NarSize: expected exactly one space after the colon$/],
  ['no final newline', example.slice(0, -1), /^line 10: expected a newline at the end of the last line$/],
  ['CRLF line ends', example.replace(/\n/g, '\r\n'), /^line 1: carriage return found/],
  ['a blank line', example.replace('\nURL', '\n\nURL'), /^line 2: expected 'Key: value', got ''$/],
  ['a line without a colon', example.replace('URL:', 'URL'), /^line 2: expected 'Key: value'/],
  ['missing StorePath', example.replace(/^StorePath: .*\n/m, ''), /^field StorePath: missing; it is required$/],
  ['missing URL', example.replace(/^URL: .*\n/m, ''), /^field URL: missing/],
  ['empty URL', example.replace(/^URL: .*$/m, 'URL: '), /^line 2, field URL: expected the NAR location/],
  ['missing NarHash', example.replace(/^NarHash: .*\n/m, ''), /^field NarHash: missing/],
  ['missing NarSize', example.replace(/^NarSize: .*\n/m, ''), /^field NarSize: missing/],
  ['zero NarSize', example.replace('NarSize: 224', 'NarSize: 0'), /^field NarSize: must not be 0$/],
  ['negative NarSize', example.replace('NarSize: 224', 'NarSize: -224'), /^line 7, field NarSize: expected a decimal number, got '-224'$/],
  ['non-numeric FileSize', example.replace('FileSize: 168', 'FileSize: 1e3'), /^line 5, field FileSize: expected a decimal number/],
  ['a bare NarHash digest', example.replace('NarHash: sha256:', 'NarHash: '), /^line 6, field NarHash: hash '.*' has no algorithm prefix/],
  ['a short NarHash', example.replace('NarHash: sha256:1', 'NarHash: sha256:'), /^line 6, field NarHash: sha256 digest .* has 51 characters/],
  ['a StorePath outside the store', example.replace('/nix/store/xwcj', '/gnu/store/xwcj'), /^line 1, field StorePath: .* not in the store directory/],
  ['a StorePath with a bad hash', example.replace('xwcj2425qhak961159fdhpd5v35ihakr-b.txt\n', 'xwcj2425qhak961159fdhpd5v35ihake-b.txt\n'), /^line 1, field StorePath: .* not a store path basename/],
  ['a bad reference', example.replace('l82nr4gna33sc2g8m4hkkr6r983dlbd6-a.txt', '../etc/passwd'), /^line 8, field References: '\.\.\/etc\/passwd' is not a store path basename/],
  ['double spaces in References', example.replace('a.txt xix', 'a.txt  xix'), /^line 8, field References: expected references separated by single spaces$/],
  ['References twice', example.replace('Sig:', 'References: l82nr4gna33sc2g8m4hkkr6r983dlbd6-a.txt\nSig:'), /^line 9, field References: References given twice$/],
  ['CA twice', example + 'CA: text:sha256:06p0y2qyrvvf97rlj62alpq6c2674ifrd5zv01ck3lq22hgfbcwk\n', /^line 11, field CA: CA given twice$/],
  ['a malformed CA', example.replace('CA: text:', 'CA: texty:'), /^line 10, field CA: content address .* must start with/],
  ['a Sig without a name', example.replace('Sig: test-cache-1:', 'Sig: '), /^line 9, field Sig: signature .* must look like/],
  ['a Sig of the wrong length', example.replace(/^Sig: .*$/m, 'Sig: k:AAAA'), /^line 9, field Sig: signature 'k:AAAA' holds 3 bytes; expected 64$/],
  ['a bad Deriver', example.replace('CA:', 'Deriver: nonsense\nCA:'), /^line 10, field Deriver: 'nonsense' is not a store path basename/],
  ['an empty document', '', /^narinfo is empty$/],
];

for (const [what, text, message] of malformed) {
  test(`refuses ${what}, naming the line and field`, () => {
    assert.throws(() => parseNarInfo(text), (error: unknown) => {
      assert.ok(error instanceof NarInfoError, `expected a NarInfoError, got ${String(error)}`);
      assert.match(error.message, message);
      return true;
    });
  });
}

const nix32Char = fc.constantFrom(...NIX32_ALPHABET.split(''));
const storePath = fc.record({
  hashPart: fc.string({ unit: nix32Char, minLength: 32, maxLength: 32 }),
  name: fc.stringMatching(/^[a-z0-9][A-Za-z0-9+\-._?=]{0,30}$/),
});
const sha256Hash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => ({ algorithm: 'sha256' as const, digest: Buffer.from(b) }));

test('property: format then parse gives back the narinfo, and formatting is stable', () => {
  const narinfo = fc.record(
    {
      storePath,
      url: sha256Hash.map((h) => `nar/${encodeNix32(h.digest)}.nar.zst`),
      compression: fc.constantFrom('zstd', 'xz', 'none', 'bzip2'),
      fileHash: sha256Hash,
      fileSize: fc.nat(),
      narHash: sha256Hash,
      narSize: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      references: fc.uniqueArray(storePath, { maxLength: 5, selector: (p) => p.hashPart }),
      deriver: storePath.map((p) => ({ ...p, name: `${p.name}.drv` })),
      sigs: fc.uniqueArray(fc.uint8Array({ minLength: 64, maxLength: 64 }).map((b) => `k-1:${Buffer.from(b).toString('base64')}`), { maxLength: 3 }),
      ca: sha256Hash.map((hash) => ({ method: 'nar' as const, hash })),
    },
    { requiredKeys: ['storePath', 'url', 'compression', 'narHash', 'narSize', 'references', 'sigs'] },
  );
  fc.assert(
    fc.property(narinfo, (info: NarInfo) => {
      const text = formatNarInfo(info);
      const parsed = parseNarInfo(text);
      assert.equal(formatNarInfo(parsed), text);
      assert.equal(parsed.narSize, info.narSize);
      assert.equal(parsed.references.length, info.references.length);
      assert.equal(parsed.sigs.length, info.sigs.length);
    }),
    { numRuns: 1000 },
  );
});

test('property: arbitrary text never throws anything but NarInfoError', () => {
  const line = fc.oneof(
    fc.string(),
    fc.constantFrom('StorePath: ', 'URL: ', 'NarHash: ', 'NarSize: ', 'References: ', 'Sig: ', 'CA: ').chain((k) => fc.string().map((v) => k + v)),
  );
  fc.assert(
    fc.property(fc.array(line, { maxLength: 12 }), fc.boolean(), (lines, newline) => {
      const text = lines.join('\n') + (newline ? '\n' : '');
      try {
        parseNarInfo(text);
      } catch (error) {
        assert.ok(error instanceof NarInfoError, String(error));
      }
    }),
    { numRuns: 3000 },
  );
});
