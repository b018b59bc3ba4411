import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNarInfo } from '../../src/nix/narinfo.ts';
import { planMirror } from '../../src/services/mirror/mirrored-narinfo.ts';

const UPSTREAM = 'https://cache.example.org';
const TEXT = `StorePath: /nix/store/0a4cx8mz4fdlrvqhhjq5k9kfyvqqmcbb-hello-2.12
URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz
Compression: xz
FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
FileSize: 50088
NarHash: sha256:0yzhigwjl6bws649vcs2asa4lbs8hg93hyix187gc7s7a74w5h80
NarSize: 226488
References: 0a4cx8mz4fdlrvqhhjq5k9kfyvqqmcbb-hello-2.12
Sig: cache.example.org-1:AJLwtc4HjQRsKi66oXg7Tk1nSHtOmcAvFvMar5HsUAbKDwRM96EUfxuah/vkt/XfnB8bHnUTlYotfVDv3U4sAQ==
`;

const info = (changes: Record<string, string>) => {
  let text = TEXT;
  for (const [field, value] of Object.entries(changes)) text = text.replace(new RegExp(`^${field}: .*$`, 'm'), `${field}: ${value}`);
  return parseNarInfo(text);
};

test('an upstream narinfo is served with the URL of larder\'s copy, named by its FileHash, everything else kept', () => {
  const plan = planMirror(UPSTREAM, parseNarInfo(TEXT));
  assert.ok(!('refused' in plan));
  assert.equal(plan.fileName, '1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz');
  assert.equal(plan.narUrl, `${UPSTREAM}/nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz`);
  assert.deepEqual({ ...plan.narinfo, url: 'x' }, { ...parseNarInfo(TEXT), url: 'x' });
  assert.equal(plan.narinfo.url, `nar/${plan.fileName}`);
});

test('the file name follows FileHash and Compression, whatever the upstream calls its file', () => {
  const plan = planMirror(UPSTREAM, info({ URL: 'some/where/file.bin', Compression: 'zstd' }));
  assert.ok(!('refused' in plan));
  assert.equal(plan.fileName, '1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.zst');
  assert.equal(plan.narUrl, `${UPSTREAM}/some/where/file.bin`);
});

test('a URL that could lead anywhere but under the upstream is refused (the URL is not signed)', () => {
  for (const url of ['http://169.254.169.254/latest', '//evil.example/x', '/etc/passwd', 'nar/../../x', 'nar/./x', 'nar//x', 'nar/x?y', 'nar/%2e%2e/x', 'nar\\x', 'file:nar']) {
    const plan = planMirror(UPSTREAM, info({ URL: url }));
    assert.ok('refused' in plan, url);
    assert.match(plan.refused, /^URL '.*' is not a plain path under the upstream$/);
  }
});

test('a narinfo without a sha256 FileHash, or with a compression larder cannot check, is refused', () => {
  const text = TEXT.replace(/^FileHash: .*\n/m, '');
  const missing = planMirror(UPSTREAM, parseNarInfo(text));
  assert.deepEqual(missing, { refused: 'FileHash is missing or not sha256' });
  const lz4 = planMirror(UPSTREAM, info({ Compression: 'lz4' }));
  assert.deepEqual(lz4, { refused: "Compression 'lz4' is not supported" });
});
