// The push parser: events for well-formed NARs under any chunking, a clear
// NarError for each way a NAR can be malformed, and nothing but NarError for
// arbitrary corruption.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { MAX_DEPTH, NarError, NarParser, type NarPath } from '../../src/nix/nar-parser.ts';
import { collect, generateTree, tempDir, writeTree } from './nar-fixtures.ts';

type Tokens = (string | Buffer)[];

/** Serialises tokens as NAR strings: u64 length, bytes, zero padding. */
function nar(...tokens: Tokens): Buffer {
  return Buffer.concat(
    tokens.flatMap((token) => {
      const bytes = Buffer.from(token);
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(bytes.length));
      return [length, bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)];
    }),
  );
}
const MAGIC = 'nix-archive-1';
const file = (contents: string | Buffer, executable = false): Tokens =>
  ['(', 'type', 'regular', ...(executable ? ['executable', ''] : []), 'contents', contents, ')'];
const link = (target: string | Buffer): Tokens => ['(', 'type', 'symlink', 'target', target, ')'];
const entry = (name: string | Buffer, node: Tokens): Tokens => ['entry', '(', 'name', name, 'node', ...node, ')'];
const dir = (...entries: Tokens[]): Tokens => ['(', 'type', 'directory', ...entries.flat(), ')'];

/** Parses `bytes` pushed `chunkSize` at a time and describes what the visitor saw. */
function events(bytes: Buffer, chunkSize = bytes.length): string[] {
  const seen: string[] = [];
  const show = (path: NarPath) => `/${path.join('/')}`;
  const parser = new NarParser({
    directory: (path) => seen.push(`directory ${show(path)}`),
    regular: (path, { executable, size, narOffset }) => seen.push(`regular ${show(path)} ${executable ? 'x' : '-'} ${size}@${narOffset}`),
    contents: (chunk) => seen.push(`contents ${chunk}`),
    symlink: (path, target) => seen.push(`symlink ${show(path)} -> ${target}`),
    endDirectory: (path) => seen.push(`end ${show(path)}`),
  });
  for (let pos = 0; pos < bytes.length; pos += chunkSize) parser.push(bytes.subarray(pos, pos + chunkSize));
  parser.end();
  assert.equal(parser.offset, bytes.length);
  return seen;
}

/** Merges adjacent contents events, which depend on chunking. */
function merged(seen: string[]): string[] {
  return seen.reduce<string[]>((out, event) => {
    const last = out.at(-1);
    if (last?.startsWith('contents ') && event.startsWith('contents ')) out[out.length - 1] = last + event.slice(9);
    else out.push(event);
    return out;
  }, []);
}

/** The NarError `bytes` fail with, checking that every chunking fails the same way. */
function failure(bytes: Buffer): NarError {
  const errors = [bytes.length || 1, 1, 3, 8, 13].map((chunkSize) => {
    try {
      events(bytes, chunkSize);
    } catch (error) {
      assert.ok(error instanceof NarError, `not a NarError: ${error}`);
      return error;
    }
    assert.fail(`accepted a malformed NAR in ${chunkSize}-byte chunks`);
  });
  for (const error of errors) assert.deepEqual([error.message, error.offset], [errors[0]!.message, errors[0]!.offset]);
  return errors[0]!;
}

function rejects(bytes: Buffer, message: string, offset?: number): void {
  const error = failure(bytes);
  assert.equal(error.message.replace(/^NAR byte \d+: /, ''), message);
  if (offset !== undefined) assert.equal(error.offset, offset);
  assert.equal(error.message, `NAR byte ${error.offset}: ${message}`);
}

test('a single file: contents offset after the 96-byte header', () => {
  const hello = nar(MAGIC, ...file('Hello, world!\n'));
  assert.equal(hello.length, 128);
  assert.deepEqual(events(hello), ['regular / - 14@96', 'contents Hello, world!\n']);
  assert.deepEqual(merged(events(hello, 1)), events(hello));
});

test('a directory: events in archive order, paths as name bytes', () => {
  const bytes = nar(MAGIC, ...dir(
    entry('bin', dir(entry('run', file('#!/bin/sh\n', true)))),
    entry('empty', file('')),
    entry('empty-dir', dir()),
    entry('link', link('bin/run')),
  ));
  const expected = [
    'directory /',
    'directory /bin',
    'regular /bin/run x 10@400',
    'contents #!/bin/sh\n',
    'end /bin',
    'regular /empty - 0@632',
    'directory /empty-dir',
    'end /empty-dir',
    'symlink /link -> bin/run',
    'end /',
  ];
  assert.deepEqual(events(bytes), expected);
  for (const chunkSize of [1, 2, 7, 8, 9, 100]) assert.deepEqual(merged(events(bytes, chunkSize)), expected);
  assert.equal(bytes.subarray(400, 410).toString(), '#!/bin/sh\n');
});

test('file contents reach the visitor as views of the pushed chunks, not copies', () => {
  const bytes = nar(MAGIC, ...file('x'.repeat(1000)));
  const views: Buffer[] = [];
  const parser = new NarParser({ contents: (chunk) => views.push(chunk) });
  parser.push(bytes);
  parser.end();
  assert.equal(views.length, 1);
  assert.equal(views[0]!.buffer, bytes.buffer);
});

test('names and targets at the length limits are accepted', () => {
  const name = 'n'.repeat(255);
  const target = 't'.repeat(4095);
  assert.deepEqual(events(nar(MAGIC, ...dir(entry(name, link(target))))), ['directory /', `symlink /${name} -> ${target}`, 'end /']);
});

test(`directories nest up to ${MAX_DEPTH} deep`, () => {
  const nested = (depth: number): Tokens => (depth === 0 ? file('') : dir(entry('d', nested(depth - 1))));
  assert.equal(events(nar(MAGIC, ...nested(MAX_DEPTH))).length, 2 * MAX_DEPTH + 1);
  rejects(nar(MAGIC, ...nested(MAX_DEPTH + 1)), `directories nested more than ${MAX_DEPTH} deep`);
});

test('rejects a bad magic', () => {
  rejects(nar('nix-archive-2', ...file('')), 'not a NAR: bad magic "nix-archive-2"', 0);
  // gzip headers read as a length field: without and with a timestamp.
  rejects(Buffer.from('1f8b0800000000000003edc1010d000000c2a0f74f6d0e37a00000', 'hex'),
    'expected the magic "nix-archive-1", found a 559903-byte string', 0);
  rejects(Buffer.from('1f8b0808d2c3b4650003', 'hex'), 'absurdly large length field', 0);
});

test('rejects non-zero padding, in tokens and after file contents', () => {
  const token = nar(MAGIC, ...file('abc'));
  token[35] = 1; // the padding of "(" at 24: length 8 bytes, "(" at 32, padding from 33
  rejects(token, 'non-zero padding', 35);

  const contents = nar(MAGIC, ...file('abc'));
  const at = contents.indexOf('abc') + 5;
  contents[at] = 0xff;
  rejects(contents, 'non-zero padding', at);
});

test('rejects unknown types and tokens', () => {
  rejects(nar(MAGIC, '(', 'type', 'fifo', ')'), 'unknown file type "fifo"', 56);
  rejects(nar(MAGIC, '(', 'type', 'regular', 'size', '1', ')'), 'expected "executable" or "contents", found "size"');
  rejects(nar(MAGIC, '(', 'type', 'regular', ')'), 'expected "executable" or "contents", found ")"');
  rejects(nar(MAGIC, '(', 'type', 'regular', 'executable', 'yes', 'contents', '', ')'), 'expected "", found "yes"');
  rejects(nar(MAGIC, '(', 'type', 'regular', 'executable', '', 'executable', '', 'contents', '', ')'),
    'expected "contents", found "executable"');
  rejects(nar(MAGIC, '(', 'type', 'regular', 'contents', 'x', 'executable', '', ')'), 'expected ")", found "executable"');
  rejects(nar(MAGIC, 'type', 'regular', 'contents', 'x', ')'), 'expected "(", found "type"', 24);
  rejects(nar(MAGIC, '(', 'type', 'symlink', 'contents', 'x', ')'), 'expected "target", found "contents"');
  rejects(nar(MAGIC, ...dir(['entry', 'name', 'a', 'node', ...file(''), ')'])), 'expected "(", found "name"');
  rejects(nar(MAGIC, ...dir(['entry', '(', 'name', 'a', ...file(''), ')'])), 'expected "node", found "("');
  rejects(nar(MAGIC, ...dir(['node', '(', 'name', 'a'])), 'expected "entry" or ")", found "node"');
  rejects(nar(MAGIC, '(', 'type', 'directory', 'x'.repeat(65)), 'expected a keyword, found a 65-byte string');
});

test('rejects unsorted and duplicate entries, comparing bytes not locale', () => {
  rejects(nar(MAGIC, ...dir(entry('b', file('')), entry('a', file('')))), 'directory entries not sorted: "a" after "b"');
  rejects(nar(MAGIC, ...dir(entry('a', file('')), entry('B', file('')))), 'directory entries not sorted: "B" after "a"');
  rejects(nar(MAGIC, ...dir(entry('é', file('')), entry('z', file('')))), 'directory entries not sorted: "z" after "é"');
  rejects(nar(MAGIC, ...dir(entry('a', file('')), entry('a', dir()))), 'duplicate directory entry "a"');
  assert.equal(events(nar(MAGIC, ...dir(entry('B', file('')), entry('a', file('')), entry('é', file(''))))).length, 5);
});

test('rejects invalid names', () => {
  const named = (name: string | Buffer) => nar(MAGIC, ...dir(entry(name, file(''))));
  rejects(named('..'), 'invalid file name ".."', 128);
  rejects(named('.'), 'invalid file name "."');
  rejects(named('a/b'), 'file name "a/b" contains "/"');
  rejects(named('a\0b'), 'file name "a\\u0000b" contains a NUL byte');
  rejects(named(''), 'empty file name');
  rejects(named('n'.repeat(256)), 'expected a file name of at most 255 bytes, found a 256-byte string', 128);
});

test('rejects bad symlink targets', () => {
  rejects(nar(MAGIC, ...link('')), 'empty symlink target');
  rejects(nar(MAGIC, ...link('a\0b')), 'symlink target "a\\u0000b" contains a NUL byte');
  rejects(nar(MAGIC, ...link('t'.repeat(4096))), 'expected a symlink target of at most 4095 bytes, found a 4096-byte string');
});

test('rejects every truncation with the offset where the data ran out', () => {
  const whole = nar(MAGIC, ...dir(entry('a', file('abc', true)), entry('l', link('a'))));
  for (let length = 0; length < whole.length; length++) {
    rejects(whole.subarray(0, length), 'unexpected end of archive', length);
  }
});

test('rejects trailing data after the root object', () => {
  const whole = nar(MAGIC, ...file('abc'));
  rejects(Buffer.concat([whole, Buffer.alloc(1)]), 'trailing data after the end of the archive', whole.length);
  rejects(Buffer.concat([whole, whole]), 'trailing data after the end of the archive', whole.length);
});

test('rejects absurd lengths before reading or allocating for them', () => {
  const header = nar(MAGIC, '(', 'type', 'regular', 'contents');
  const huge = (value: bigint) => {
    const field = Buffer.alloc(8);
    field.writeBigUInt64LE(value);
    return field;
  };
  rejects(Buffer.concat([header, huge(2n ** 63n)]), 'absurdly large length field', header.length);
  // A plausible 1 TiB file is streamed, not buffered: it fails only for lack of data.
  rejects(Buffer.concat([header, huge(2n ** 40n), Buffer.alloc(4096)]), 'unexpected end of archive', header.length + 8 + 4096);
  const dirHeader = nar(MAGIC, '(', 'type', 'directory', 'entry', '(', 'name');
  rejects(Buffer.concat([dirHeader, huge(10n ** 12n)]), 'expected a file name of at most 255 bytes, found a 1000000000000-byte string');
});

test('an error sticks: later pushes and end() rethrow it', () => {
  const parser = new NarParser({});
  assert.throws(() => parser.push(nar('nix-archive-0')), NarError);
  assert.throws(() => parser.push(nar(...file(''))), /bad magic/);
  assert.throws(() => parser.end(), /bad magic/);
});

test('property: corrupted NARs fail only with NarError', async (t) => {
  const tmp = await tempDir(t);
  // Small trees, so that mutations hit structure more often than contents.
  const samples: Buffer[] = [nar(MAGIC, ...dir(entry('a', file('abc', true)), entry('b', link('a')), entry('c', dir())))];
  for (let seed = 2; samples.length < 8; seed++) {
    const path = join(tmp, `tree-${seed}`);
    await writeTree(Buffer.from(path), generateTree(seed));
    const bytes = await collect(encodeNar(path));
    if (bytes.length < 4000) samples.push(bytes);
  }
  const edit = fc.record({ at: fc.nat(), byte: fc.oneof(fc.constantFrom(0, 1, 8, 0x2f, 0xff), fc.integer({ min: 0, max: 255 })) });
  fc.assert(
    fc.property(
      fc.nat({ max: samples.length - 1 }),
      fc.array(edit, { minLength: 1, maxLength: 4 }),
      fc.option(fc.nat()),
      fc.integer({ min: 1, max: 64 }),
      (sample, edits, cut, chunkSize) => {
        let bytes = Buffer.from(samples[sample]!);
        for (const { at, byte } of edits) bytes[at % bytes.length] = byte;
        if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1));
        try {
          events(bytes, chunkSize);
        } catch (error) {
          if (!(error instanceof NarError)) throw error;
        }
      },
    ),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
      try {
        events(Buffer.concat([nar(MAGIC), junk]));
      } catch (error) {
        if (!(error instanceof NarError)) throw error;
      }
    }),
    { numRuns: 2000 },
  );
});
