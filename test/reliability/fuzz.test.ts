// Property-based fuzzing of every parser that reads what a client sends:
// narinfos, NARs (push parser under any chunking), store paths, NAR file
// names, hashes, Range headers, URL path segments and resources, and the
// Authorization header; and the decompressors over garbage. Each must either
// accept (and then what it returns must hold its promises) or refuse with its
// own error type, which the server turns into a 4xx; any other exception would
// be a 500. A few thousand inputs by default; with LARDER_LONG=1 over a
// million in all (counted, and the count asserted).

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { createDecompressor } from '../../src/compression/decompress.ts';
import { formatHash, parseHash } from '../../src/nix/hash.ts';
import { NarError, NarParser } from '../../src/nix/nar-parser.ts';
import { formatNarInfo, NarInfoError, parseNarInfo } from '../../src/nix/narinfo.ts';
import { encodeNix32, NIX32_ALPHABET } from '../../src/nix/nix32.ts';
import { isHashPart, parseStorePath, parseStorePathBase, printStorePath } from '../../src/nix/store-path.ts';
import { parseResource } from '../../src/server/binary-cache.ts';
import { presentedToken } from '../../src/server/credentials.ts';
import { HttpError } from '../../src/server/http-error.ts';
import { parseRange } from '../../src/server/range.ts';
import { pathSegments } from '../../src/server/server.ts';
import { parseNarFileName } from '../../src/services/publish.ts';
import { Rejection } from '../../src/services/rejection.ts';
import { sha256 } from './fixtures.ts';

const LONG = process.env.LARDER_LONG === '1';
/** Inputs per property: the weights share out the long mode's million by each parser's speed. */
const runs = (weight: number) => (LONG ? Math.round(weight * 100_000) : Math.max(200, Math.round(weight * 1000)));

let inputs = 0;
after(() => {
  process.stdout.write(`# fuzz: ${inputs} inputs in total${LONG ? ' (long mode)' : ''}\n`);
  if (LONG) assert.ok(inputs >= 1_000_000, `long mode must fuzz at least a million inputs, ran ${inputs}`);
});

function check<T>(arbitrary: fc.Arbitrary<T>, weight: number, predicate: (value: T) => void): void {
  fc.assert(
    fc.property(arbitrary, (value) => {
      inputs++;
      predicate(value);
    }),
    { numRuns: runs(weight) },
  );
}

/** Runs `fn`; an exception must be an instance of `allowed`. */
function refusesOnlyWith(allowed: abstract new (...args: never[]) => Error, fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (error) {
    if (!(error instanceof allowed)) throw new Error(`threw ${(error as Error)?.name}: ${(error as Error)?.message}, not a ${allowed.name}`, { cause: error });
    assert.ok((error as Error).message.length > 0, 'a refusal says why');
    return false;
  }
}

// ---- building blocks --------------------------------------------------------------------------

const nix32 = (length: number) => fc.array(fc.constantFrom(...NIX32_ALPHABET), { minLength: length, maxLength: length }).map((a) => a.join(''));
const hashPart = nix32(32);
const name = fc.oneof(fc.constantFrom('hello-2.12', 'glibc', 'a', '.x', '..-x', 'x'.repeat(211), 'x'.repeat(212)), fc.string({ maxLength: 20 }));
const base = fc.tuple(hashPart, name).map(([h, n]) => `${h}-${n}`);
/** Strings that are near what a parser expects, and strings that are anything. */
const anyText = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ unit: 'grapheme', maxLength: 40 }));

/** Small random edits: where parsers get off by one. */
function mutated(text: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const edit = fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }));
  return fc.tuple(text, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([t, edits]) => {
    let out = t;
    for (const [at, kind, s] of edits) {
      const i = out.length === 0 ? 0 : at % (out.length + 1);
      if (kind === 'insert') out = out.slice(0, i) + s + out.slice(i);
      else if (kind === 'delete') out = out.slice(0, i) + out.slice(i + s.length);
      else out = out.slice(0, i) + s + out.slice(i + s.length);
    }
    return out;
  });
}

// ---- narinfo -----------------------------------------------------------------------------------

const NAR_HASH = `sha256:${encodeNix32(sha256('nar'))}`;
const VALID_NARINFO = [
  `StorePath: /nix/store/${'a'.repeat(32)}-hello`,
  `URL: nar/${encodeNix32(sha256('file'))}.nar.zst`,
  'Compression: zstd',
  `FileHash: sha256:${encodeNix32(sha256('file'))}`,
  'FileSize: 1234',
  `NarHash: ${NAR_HASH}`,
  'NarSize: 5678',
  `References: ${'b'.repeat(32)}-dep ${'a'.repeat(32)}-hello`,
  `Deriver: ${'c'.repeat(32)}-hello.drv`,
  `Sig: k-1:${Buffer.alloc(64, 7).toString('base64')}`,
  'CA: fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s',
  '',
].join('\n');

const FIELD = fc.constantFrom('StorePath', 'URL', 'Compression', 'FileHash', 'FileSize', 'NarHash', 'NarSize', 'References', 'Deriver', 'System', 'Sig', 'CA', 'X-New', '', ' ');
const FIELD_VALUE = fc.oneof(
  fc.constantFrom(`/nix/store/${'a'.repeat(32)}-x`, NAR_HASH, 'sha256:abc', 'md5:0', '0', '18446744073709551616', '-1', '12a', 'k:AAAA', 'unknown-deriver', ''),
  base,
  anyText,
);
const narinfoLines = fc
  .tuple(fc.array(fc.tuple(FIELD, fc.constantFrom(': ', ':', ':  ', ' : '), FIELD_VALUE), { maxLength: 14 }), fc.boolean())
  .map(([lines, newline]) => lines.map(([k, sep, v]) => `${k}${sep}${v}`).join('\n') + (newline ? '\n' : ''));

test('narinfo: accepted texts round-trip, everything else is a NarInfoError', () => {
  check(fc.oneof(narinfoLines, mutated(fc.constant(VALID_NARINFO)), anyText), 3, (text) => {
    let info;
    if (!refusesOnlyWith(NarInfoError, () => (info = parseNarInfo(text)))) return;
    const again = parseNarInfo(formatNarInfo(info!));
    assert.equal(formatNarInfo(again), formatNarInfo(info!), 'serialising what was parsed is stable');
  });
});

// ---- NAR ---------------------------------------------------------------------------------------

/** NAR strings: u64 length, bytes, zero padding. */
function narTokens(...tokens: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    tokens.flatMap((token) => {
      const bytes = Buffer.from(token);
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(bytes.length));
      return [length, bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)];
    }),
  );
}
const VALID_NARS = [
  narTokens('nix-archive-1', '(', 'type', 'regular', 'contents', 'Hello, world!\n', ')'),
  narTokens('nix-archive-1', '(', 'type', 'symlink', 'target', '../x', ')'),
  narTokens(
    'nix-archive-1', '(', 'type', 'directory',
    'entry', '(', 'name', 'bin', 'node', '(', 'type', 'regular', 'executable', '', 'contents', '#!/bin/sh\n', ')', ')',
    'entry', '(', 'name', 'lib', 'node', '(', 'type', 'directory', ')', ')',
    'entry', '(', 'name', 'link', 'node', '(', 'type', 'symlink', 'target', 'bin', ')', ')',
    ')',
  ),
];

const narMutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('length' as const), at: fc.nat(), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
);
type NarMutation = typeof narMutation extends fc.Arbitrary<infer M> ? M : never;

function applyNarMutation(nar: Buffer, m: NarMutation): Buffer {
  const at = nar.length === 0 ? 0 : m.at % nar.length;
  switch (m.kind) {
    case 'flip': {
      const out = Buffer.from(nar);
      if (out.length > 0) out[at] = out[at]! ^ (1 << m.bit);
      return out;
    }
    case 'truncate':
      return nar.subarray(0, at);
    case 'insert':
      return Buffer.concat([nar.subarray(0, at), m.bytes, nar.subarray(at)]);
    case 'length': {
      // Overwrite an aligned u64: where the lengths of strings live.
      const out = Buffer.from(nar);
      const slot = at - (at % 8);
      if (slot + 8 <= out.length) out.writeBigUInt64LE(m.value, slot);
      return out;
    }
  }
}

const narBytes = fc.oneof(
  fc.tuple(fc.constantFrom(...VALID_NARS), fc.array(narMutation, { maxLength: 3 })).map(([nar, ms]) => ms.reduce(applyNarMutation, nar)),
  fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.concat([narTokens('nix-archive-1'), b])),
  fc.uint8Array({ maxLength: 128 }).map((b) => Buffer.from(b)),
);

test('NAR push parser: any bytes in any chunking either parse completely or fail with a NarError', () => {
  check(fc.tuple(narBytes, fc.integer({ min: 1, max: 64 })), 2, ([bytes, chunk]) => {
    const parser = new NarParser({});
    const ok = refusesOnlyWith(NarError, () => {
      for (let at = 0; at < bytes.length; at += chunk) parser.push(bytes.subarray(at, at + chunk));
      parser.end();
    });
    if (ok) assert.equal(parser.offset, bytes.length, 'an accepted NAR is consumed to its last byte');
  });
});

// ---- store paths, NAR file names, hashes -------------------------------------------------------

test('store paths: accepted ones print back as given; the rest are refused with a message', () => {
  check(fc.oneof(base.map((b) => `/nix/store/${b}`), mutated(base.map((b) => `/nix/store/${b}`)), anyText), 1.5, (path) => {
    let parsed;
    if (!refusesOnlyWith(Error, () => (parsed = parseStorePath(path)))) return;
    assert.equal(printStorePath(parsed!), path);
    assert.ok(isHashPart(parsed!.hashPart));
    assert.doesNotThrow(() => parseStorePathBase(path.slice('/nix/store/'.length)));
  });
});

const narFileName = fc.tuple(nix32(52), fc.constantFrom('', '.xz', '.zst', '.bz2', '.br', '.gz', '.lz4', '.', '.ZST', '/x'));
test('NAR file names: nar/<52 nix32>.nar[.ext] or a Rejection (400/415)', () => {
  check(fc.oneof(narFileName.map(([h, ext]) => `${h}.nar${ext}`), mutated(narFileName.map(([h, ext]) => `${h}.nar${ext}`)), anyText), 1.5, (fileName) => {
    let parsed;
    if (!refusesOnlyWith(Rejection, () => (parsed = parseNarFileName(fileName)))) return;
    assert.match(parsed!.fileHash, /^[0-9a-df-np-sv-z]{52}$/);
    assert.ok(fileName.startsWith(`${parsed!.fileHash}.nar`));
  });
});

test('hashes in every spelling: accepted ones format and parse back to the same digest', () => {
  const spelled = fc.tuple(fc.constantFrom('sha256', 'sha512', 'sha1', 'md5', 'blake3', ''), fc.constantFrom(':', '-', ''), fc.oneof(nix32(52), fc.base64String(), anyText));
  check(fc.oneof(spelled.map(([a, s, v]) => `${a}${s}${v}`), mutated(fc.constant(NAR_HASH))), 1.5, (text) => {
    let hash;
    if (!refusesOnlyWith(Error, () => (hash = parseHash(text)))) return;
    assert.equal(formatHash(parseHash(formatHash(hash!))), formatHash(hash!));
  });
});

// ---- HTTP: Range, path segments, resources, Authorization --------------------------------------

test('Range headers: never a throw; a range is always inside the blob', () => {
  const header = fc.oneof(
    fc.tuple(fc.constantFrom('bytes=', 'bytes = ', 'items=', ''), fc.oneof(fc.nat(), fc.constant('')), fc.constantFrom('-', ',', '--'), fc.oneof(fc.nat(), fc.constant(''), fc.constant('99999999999999999999'))).map((p) => p.join('')),
    anyText,
  );
  check(fc.tuple(fc.option(header, { nil: undefined }), fc.integer({ min: 0, max: 1_000_000 })), 1.5, ([h, size]) => {
    const answer = parseRange(h, size);
    if (answer.kind !== 'range') return;
    const { start, end } = answer.range;
    assert.ok(Number.isSafeInteger(start) && Number.isSafeInteger(end), `${h} → ${start}-${end}`);
    assert.ok(start >= 0 && start <= end && end < size, `${h} on ${size} bytes → ${start}-${end}`);
  });
});

const segment = fc.oneof(
  fc.constantFrom('main', 'nar', '..', '.', '%2e%2e', '%2E%2e', '%252e%252e', '%2f', '%5c', '%00', '%zz', '%', '%e2%82', '%c0%ae', 'a%2Fb', '', 'nix-cache-info'),
  hashPart.map((h) => `${h}.narinfo`),
  anyText,
);
test('URL paths: decoded segments never hold a separator, NUL or dot-segment; the rest is a 400', () => {
  const url = fc.tuple(fc.constantFrom('/', '', '//', '/api/v1/'), fc.array(segment, { maxLength: 6 }), fc.constantFrom('', '?x=1', '?', '#f')).map(([head, segs, tail]) => head + segs.join('/') + tail);
  check(url, 2, (text) => {
    let segments: string[] = [];
    try {
      segments = pathSegments(text);
    } catch (error) {
      assert.ok(error instanceof HttpError && error.status === 400, `${JSON.stringify(text)}: ${(error as Error).message}`);
      return;
    }
    for (const s of segments) {
      assert.ok(!s.includes('/') && !s.includes('\\') && !s.includes('\0') && s !== '.' && s !== '..', `${JSON.stringify(text)} → ${JSON.stringify(s)}`);
    }
    // What the binary cache protocol makes of the rest of the path: a known resource or nothing.
    const resource = parseResource(segments.slice(1).join('/'));
    if (resource?.kind === 'narinfo' || resource?.kind === 'listing') assert.ok(isHashPart(resource.hashPart));
    if (resource?.kind === 'nar') assert.ok(!resource.fileName.includes('/'));
  });
});

test('Authorization headers: never a throw; a token is a non-empty string', () => {
  const header = fc.oneof(
    fc.tuple(fc.constantFrom('Bearer ', 'bearer  ', 'Basic ', 'basic ', 'Digest ', 'Bearer', ''), fc.oneof(fc.base64String(), anyText, fc.constant('ldr_x'))).map(([s, v]) => s + v),
    fc.tuple(anyText, anyText).map(([u, p]) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`),
    anyText,
  );
  check(fc.option(header, { nil: undefined }), 2, (h) => {
    const token = presentedToken(h);
    if (token !== undefined) assert.ok(typeof token === 'string' && token.length > 0);
  });
});

// ---- decompressors over garbage ----------------------------------------------------------------

test('decompressors: garbage is an error on the stream, never an exception that escapes', async () => {
  const samples = fc.sample(fc.tuple(fc.constantFrom('zstd', 'gzip', 'br', 'xz') , fc.uint8Array({ maxLength: 512 })), LONG ? 20_000 : 300);
  for (const [compression, bytes] of samples) {
    inputs++;
    await pipeline(Readable.from([Buffer.from(bytes)]), createDecompressor(compression), async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source);
    }).catch((error: unknown) => assert.ok(error instanceof Error, String(error)));
  }
});
