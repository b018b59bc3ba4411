// The NAR check pool behind NAR uploads (services/nar-check.ts): the hashes
// and sizes it reports against node:crypto and the NAR encoder, for every
// way the bytes may arrive; malformed NARs and corrupt compressed data
// failing with the errors publish.ts turns into refusals; checks that are
// abandoned or lose their worker; and a process that used it exiting.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync, zstdCompressSync } from 'node:zlib';
import { DecompressionError } from '../../src/compression/decompress.ts';
import type { Compression } from '../../src/nix/compression.ts';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { NarError } from '../../src/nix/nar-parser.ts';
import { verifyNar } from '../../src/nix/nar-decoder.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { NarCheckPool, type NarCheck } from '../../src/services/nar-check.ts';
import { collect, generateTree, tempDir, writeTree } from '../nix/nar-fixtures.ts';

const MiB = 1024 * 1024;

function pool(t: { after(fn: () => Promise<void>): void }, size: number): NarCheckPool {
  const made = new NarCheckPool({ size });
  t.after(() => made.close());
  return made;
}

/** Pushes `data` in pieces of the given sizes (cycled), as a socket would deliver it. */
async function feed(check: NarCheck, data: Buffer, sizes: readonly number[]): Promise<void> {
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    await check.push(data.subarray(at, at + n));
    at += n;
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

/** A NAR of a few MiB (several batches): random trees, plus a big file of text and one of noise. */
async function bigNar(t: Parameters<typeof tempDir>[0]): Promise<Buffer> {
  const dir = await tempDir(t);
  const noise = Buffer.alloc(3 * MiB);
  for (let at = 0, block = Buffer.from('seed'); at < noise.length; at += 32) {
    block = sha256(block);
    block.copy(noise, at);
  }
  await writeTree(Buffer.from(`${dir}/root`), {
    type: 'directory',
    entries: [
      [Buffer.from('noise'), { type: 'regular', mode: 0o644, contents: noise }],
      [Buffer.from('text'), { type: 'regular', mode: 0o755, contents: Buffer.from('larder verifies '.repeat(200_000)) }],
      [Buffer.from('tree'), generateTree(11)],
    ],
  });
  return collect(encodeNar(`${dir}/root`));
}

/** The xz and bzip2 programs compress (larder itself needs bzip2; xz-utils comes with Debian). */
const viaProgram = (program: string) => (nar: Buffer) => execFileSync(program, ['-c'], { input: nar, maxBuffer: 1 << 30 });

const COMPRESSORS: Record<string, (nar: Buffer) => Buffer> = {
  none: (nar) => nar,
  zstd: (nar) => zstdCompressSync(nar, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }),
  gzip: (nar) => gzipSync(nar),
  br: (nar) => brotliCompressSync(nar, { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } }),
  // Their decoders hold input past the write callback (a web stream, a pipe): batches are copied.
  xz: viaProgram('xz'),
  bzip2: viaProgram('bzip2'),
};

test('FileHash, NarHash and NarSize are those of the bytes, however they arrive and whatever the compression', async (t) => {
  const nar = await bigNar(t);
  assert.ok(nar.length > 6 * MiB, `${nar.length} bytes: several batches`);
  const checks = pool(t, 2);
  for (const [name, compress] of Object.entries(COMPRESSORS)) {
    const file = compress(nar);
    for (const sizes of [[file.length], [65536], [1, 7, 4093, 1 << 20, 3 * MiB]]) {
      const check = checks.start(name as Compression);
      await feed(check, file, sizes);
      const checked = await check.finish();
      assert.equal(checked.fileHash, encodeNix32(sha256(file)), `${name} ${sizes}: FileHash`);
      assert.equal(checked.fileSize, file.length, `${name} ${sizes}: FileSize`);
      assert.ok(checked.narHash.equals(sha256(nar)), `${name} ${sizes}: NarHash`);
      assert.equal(checked.narSize, nar.length, `${name} ${sizes}: NarSize`);
    }
  }
  // An uncompressed NAR needs no worker: it is its own FileHash, hashed once on this thread.
  const inline = pool(t, 1);
  const check = inline.start('none');
  await feed(check, nar, [65536]);
  assert.ok((await check.finish()).narHash.equals(sha256(nar)));
  assert.equal(inline.threads, 0);
});

test('many checks at once on one worker keep their bytes apart', async (t) => {
  const dir = await tempDir(t);
  const nars: Buffer[] = [];
  for (let seed = 20; seed < 32; seed++) {
    await writeTree(Buffer.from(`${dir}/t${seed}`), generateTree(seed));
    nars.push(await collect(encodeNar(`${dir}/t${seed}`)));
  }
  nars.push(await bigNar(t));
  const checks = pool(t, 1);
  const results = await Promise.all(
    nars.map(async (nar, i) => {
      const check = checks.start(i % 2 ? 'zstd' : 'none');
      await feed(check, i % 2 ? COMPRESSORS.zstd!(nar) : nar, [1000 + i * 7919]);
      return check.finish();
    }),
  );
  assert.equal(checks.threads, 1);
  for (const [i, nar] of nars.entries()) {
    assert.ok(results[i]!.narHash.equals(sha256(nar)), `NAR ${i}`);
    assert.equal(results[i]!.narSize, nar.length, `NAR ${i}`);
  }
});

test('a malformed NAR fails with the NarError the parser gives, offset and all', async (t) => {
  const nar = await bigNar(t);
  const checks = pool(t, 1);
  // A wrong keyword early, a bad padding byte, a truncation: each as the parser itself reports it.
  const broken = [Buffer.concat([nar.subarray(0, 24), Buffer.from('X'), nar.subarray(25)]), nar.subarray(0, nar.length - 8)];
  for (const bytes of broken) {
    const expected = await verifyNar((async function* () { yield bytes; })()).then(
      () => assert.fail('the parser accepted a broken NAR'),
      (error: unknown) => error as NarError,
    );
    assert.ok(expected instanceof NarError);
    for (const compression of ['none', 'zstd'] as const) {
      const check = checks.start(compression);
      const rejected = (async () => {
        await feed(check, compression === 'none' ? bytes : COMPRESSORS.zstd!(bytes), [65536]);
        return check.finish();
      })();
      await assert.rejects(rejected, (error: unknown) => {
        assert.ok(error instanceof NarError, String(error));
        assert.equal(error.message, expected.message);
        assert.equal(error.offset, expected.offset);
        return true;
      });
    }
  }
});

test('bytes that are not valid compressed data fail with a DecompressionError', async (t) => {
  const nar = await bigNar(t);
  const checks = pool(t, 1);
  const zstd = COMPRESSORS.zstd!(nar);
  // (Corrupting a block's contents may just change the NAR, which the NarHash comparison catches.)
  const corrupt = Buffer.from(zstd);
  corrupt.fill(0xa5, 0, 4);
  for (const [compression, bytes] of [['zstd', corrupt], ['zstd', nar], ['gzip', zstd]] as const) {
    const check = checks.start(compression);
    const rejected = (async () => {
      await feed(check, bytes, [65536]);
      return check.finish();
    })();
    await assert.rejects(rejected, (error: unknown) => {
      assert.ok(error instanceof DecompressionError, `${compression}: ${String(error)}`);
      assert.ok(error.message.length > 0);
      return true;
    });
  }
  // A compressed stream cut short never passes: either the codec or the NAR parser notices.
  const check = checks.start('zstd');
  await feed(check, zstd.subarray(0, zstd.length - 100), [65536]);
  await assert.rejects(check.finish(), (error: unknown) => error instanceof DecompressionError || error instanceof NarError);
});

test('abandoned checks, and checks whose pool closes, end without hurting the others', async (t) => {
  const nar = await bigNar(t);
  const checks = pool(t, 1);
  const abandoned = checks.start('zstd');
  await abandoned.push(COMPRESSORS.zstd!(nar).subarray(0, 3 * MiB));
  abandoned.abandon();
  abandoned.abandon();
  await assert.rejects(abandoned.push(nar.subarray(0, 10)), /ended/);
  const next = checks.start('zstd');
  await feed(next, COMPRESSORS.zstd!(nar), [65536]);
  assert.ok((await next.finish()).narHash.equals(sha256(nar)));

  const other = new NarCheckPool({ size: 1 });
  const cut = other.start('zstd');
  await cut.push(COMPRESSORS.zstd!(nar).subarray(0, 2 * MiB));
  await other.close();
  await assert.rejects(cut.finish(), /checking the NAR failed: its worker thread died/);
  assert.equal(other.threads, 0);
});

test('a process that used the shared pool exits on its own when done', async (t) => {
  const dir = await tempDir(t);
  await writeTree(Buffer.from(`${dir}/tree`), generateTree(5));
  const check = fileURLToPath(new URL('../../src/services/nar-check.ts', import.meta.url));
  const encoder = fileURLToPath(new URL('../../src/nix/nar-encoder.ts', import.meta.url));
  const script = `
    import { sharedNarCheckPool } from ${JSON.stringify(check)};
    import { encodeNar } from ${JSON.stringify(encoder)};
    import { zstdCompressSync } from 'node:zlib';
    const chunks = [];
    for await (const chunk of encodeNar(${JSON.stringify(`${dir}/tree`)})) chunks.push(chunk);
    const file = zstdCompressSync(Buffer.concat(chunks));
    const results = await Promise.all([1, 2, 3].map(async () => {
      const check = sharedNarCheckPool().start('zstd');
      await check.push(file);
      return (await check.finish()).fileHash;
    }));
    console.log(results.join(' '));
  `;
  // Idle workers end after 30 s: a process still waiting for them would hit this timeout.
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 }, (error, out, err) =>
      error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
    );
    child.stdin?.end();
  });
  const hashes = stdout.trim().split(' ');
  assert.equal(hashes.length, 3);
  assert.equal(new Set(hashes).size, 1);
});
