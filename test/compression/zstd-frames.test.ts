import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import test from 'node:test';
import { constants, createZstdCompress, zstdCompressSync } from 'node:zlib';
import { createDecompressor, DecompressionError } from '../../src/compression/decompress.ts';
import { ZstdFrameSplitter } from '../../src/compression/zstd-frames.ts';

const zstd = (data: Buffer, params: Record<number, number> = {}) => zstdCompressSync(data, { params });

/** A frame as a streaming compressor writes it: no content size in its header, a window descriptor. */
async function streamedFrame(data: Buffer): Promise<Buffer> {
  return buffer(Readable.from([data]).pipe(createZstdCompress()));
}

/** Frames of every shape the format allows that zstd writes, each with what it decodes to. */
async function sampleFrames(): Promise<Array<{ frame: Buffer; plain: Buffer }>> {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(5000));
  const samples = [
    Buffer.alloc(0), // an empty frame: one empty last block
    Buffer.from('tiny'), // single segment, 1-byte content size
    Buffer.alloc(300_000, 0x61), // RLE blocks
    randomBytes(200_000), // raw blocks
    text, // compressed blocks, 4-byte content size
  ];
  const frames: Array<{ frame: Buffer; plain: Buffer }> = samples.map((plain) => ({ frame: zstd(plain), plain }));
  frames.push({ frame: zstd(text, { [constants.ZSTD_c_checksumFlag]: 1 }), plain: text });
  frames.push({ frame: await streamedFrame(text), plain: text });
  return frames;
}

function skippableFrame(payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a5e, 0);
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

test('the splitter cuts at every frame end and nowhere else, whatever the chunk sizes', async () => {
  const parts = [...(await sampleFrames()).map((s) => s.frame), skippableFrame(Buffer.from('ignored')), skippableFrame(Buffer.alloc(0))];
  const stream = Buffer.concat(parts);
  const ends = new Set<number>();
  let end = 0;
  for (const part of parts) ends.add((end += part.length));
  for (const size of [1, 2, 3, 5, 8, 1000, 65536, stream.length]) {
    const splitter = new ZstdFrameSplitter();
    let offset = 0;
    const cuts: number[] = [];
    for (const chunk of chunksOf(stream, size)) {
      const pieces = splitter.split(chunk);
      assert.deepEqual(Buffer.concat(pieces), chunk, `chunk size ${size}: the pieces are the chunk`);
      for (const piece of pieces) {
        offset += piece.length;
        if (ends.has(offset)) cuts.push(offset);
        else assert.equal(offset % size === 0 || offset === stream.length, true, `chunk size ${size}: a cut at ${offset} is neither a frame end nor a chunk end`);
      }
    }
    splitter.finish();
    assert.deepEqual(cuts, [...ends], `chunk size ${size}: a piece ends at every frame end`);
    assert.equal(splitter.frames, parts.length);
  }
});

test('the splitter refuses bytes after the last frame that are not a frame, and a cut-off frame', () => {
  const frame = zstd(Buffer.from('some text '.repeat(100)));
  const trailing = new ZstdFrameSplitter();
  assert.throws(
    () => trailing.split(Buffer.concat([frame, Buffer.from('\n\n\n\n')])),
    (error: Error) => error instanceof DecompressionError && error.message.includes('1 zstd frame(s) followed by bytes that are not a frame') && error.message.includes(`at byte ${frame.length}`),
  );
  assert.throws(() => new ZstdFrameSplitter().split(Buffer.from('nix-archive-1')), /is not zstd data \(at byte 0/);
  const cut = new ZstdFrameSplitter();
  cut.split(frame.subarray(0, frame.length - 1));
  assert.throws(() => cut.finish(), (error: Error) => error instanceof DecompressionError && /ends in the middle of a frame \(after \d+ bytes\)/.test(error.message));
  const reserved = Buffer.from(frame);
  reserved[4] = reserved[4]! | 0x08;
  assert.throws(() => new ZstdFrameSplitter().split(reserved), /sets its reserved bit/);
});

test('zstd with several frames decompresses to all of them, in chunks of any size (node:zlib alone stops after the first)', async () => {
  const samples = await sampleFrames();
  const stream = Buffer.concat([...samples.map((s) => s.frame), skippableFrame(Buffer.from('metadata'))]);
  const plain = Buffer.concat(samples.map((s) => s.plain));
  for (const size of [1000, 4096, 65536, 1 << 20, stream.length]) {
    const out = await buffer(Readable.from(chunksOf(stream, size)).pipe(createDecompressor('zstd')));
    assert.ok(out.equals(plain), `chunk size ${size}: ${out.length} bytes out, expected ${plain.length}`);
  }
});

test('zstd followed by junk, or cut short, is an error on the stream', async () => {
  const frame = zstd(Buffer.from('payload '.repeat(10_000)));
  for (const [name, bytes, expected] of [
    ['junk after the frame', Buffer.concat([frame, Buffer.alloc(16, 0x20)]), /followed by bytes that are not a frame/],
    ['cut short', frame.subarray(0, frame.length - 10), /truncated/],
  ] as const) {
    await assert.rejects(
      pipeline(Readable.from(chunksOf(bytes, 4096)), createDecompressor('zstd'), async (source: AsyncIterable<Buffer>) => {
        for await (const _ of source);
      }),
      expected,
      name,
    );
  }
});
