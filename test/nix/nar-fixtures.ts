// Shared by the NAR tests: file trees described as data (written to disk,
// or rebuilt from a decoded NAR), a seeded generator of awkward trees, and
// `nix-store --dump` as the reference encoder.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { decodeNar } from '../../src/nix/nar-decoder.ts';
import type { NixEnv } from '../helpers/nix-env.ts';

/** A tree as it sits on disk. Directory entries are sorted bytewise and unique. */
export type FsTree =
  | { readonly type: 'regular'; readonly mode: number; readonly contents: Buffer }
  | { readonly type: 'symlink'; readonly target: Buffer }
  | { readonly type: 'directory'; readonly entries: readonly (readonly [Buffer, FsTree])[] };

/** A tree as a NAR sees it: of a file's mode, only the owner-execute bit survives. */
export type NarTree =
  | { readonly type: 'regular'; readonly executable: boolean; readonly contents: Buffer }
  | { readonly type: 'symlink'; readonly target: Buffer }
  | { readonly type: 'directory'; readonly entries: readonly (readonly [Buffer, NarTree])[] };

export function narTreeOf(tree: FsTree): NarTree {
  switch (tree.type) {
    case 'regular':
      return { type: 'regular', executable: (tree.mode & 0o100) !== 0, contents: tree.contents };
    case 'symlink':
      return tree;
    case 'directory':
      return { type: 'directory', entries: tree.entries.map(([name, node]) => [name, narTreeOf(node)] as const) };
  }
}

export async function writeTree(path: Buffer, tree: FsTree): Promise<void> {
  switch (tree.type) {
    case 'regular':
      await writeFile(path, tree.contents);
      await chmod(path, tree.mode);
      return;
    case 'symlink':
      await symlink(tree.target, path);
      return;
    case 'directory':
      await mkdir(path);
      for (const [name, node] of tree.entries) await writeTree(Buffer.concat([path, Buffer.from('/'), name]), node);
  }
}

/** Rebuilds the tree a NAR describes, reading every file's contents. */
export async function decodeTree(nar: AsyncIterable<Buffer>): Promise<NarTree> {
  type Node = { type: 'regular'; executable: boolean; contents: Buffer } | { type: 'symlink'; target: Buffer } | { type: 'directory'; entries: [Buffer, Node][] };
  let root: Node | undefined;
  const directories: Extract<Node, { type: 'directory' }>[] = [];
  for await (const entry of decodeNar(nar)) {
    let node: Node;
    if (entry.type === 'regular') {
      const chunks: Buffer[] = [];
      for await (const chunk of entry.contents) chunks.push(chunk);
      node = { type: 'regular', executable: entry.executable, contents: Buffer.concat(chunks) };
    } else if (entry.type === 'symlink') {
      node = { type: 'symlink', target: entry.target };
    } else {
      node = { type: 'directory', entries: [] };
      directories[entry.path.length] = node;
    }
    const name = entry.path.at(-1);
    if (name === undefined) root = node;
    else directories[entry.path.length - 1]!.entries.push([name, node]);
  }
  if (root === undefined) throw new Error('empty NAR');
  return root;
}

/** Feeds `data` in pieces whose sizes `sizes` picks. */
export async function* chunked(data: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < data.length; ) {
    const end = Math.min(data.length, pos + Math.max(1, sizes()));
    yield data.subarray(pos, end);
    pos = end;
  }
}

export async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const all: Buffer[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return Buffer.concat(all);
}

/** A temporary directory removed after the test. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-nar-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// ---- Reference encoder

/** `nix-store --dump path`, whole. */
export async function nixDump(nix: NixEnv, path: string): Promise<Buffer> {
  return collect(nixDumpStream(nix, path));
}

/** `nix-store --dump path` as a stream, for archives too big to hold. */
export async function* nixDumpStream(nix: NixEnv, path: string): AsyncGenerator<Buffer> {
  const child = spawn('nix-store', ['--dump', path], { env: nix.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
  const stderr: Buffer[] = [];
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  yield* child.stdout;
  const code = await exit;
  if (code !== 0) throw new Error(`nix-store --dump ${path} exited with ${code}: ${Buffer.concat(stderr)}`);
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---- Seeded generator of awkward trees

/** mulberry32: a small deterministic PRNG, so a failing seed can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Names whose bytewise order differs from locale order ("B" < "a" < "é"),
// that look like numbers or object keys, that are not UTF-8, or are as long as allowed.
const NAMES: readonly Buffer[] = [
  'a', 'B', 'b', 'é', 'É', 'z', 'Z', '.hidden', '..dots', '...', 'with space', '-dash', '--', '_',
  '10', '9', '0', '__proto__', 'constructor', '日本語', '🙂', 'a.b', '~tilde', 'quote"', 'back\\slash',
  'tab\there', 'new\nline', 'x'.repeat(255),
].map((name) => Buffer.from(name)).concat([Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0x80, 0x61, 0xfe])]);

const TARGETS: readonly Buffer[] = [
  'a', 'B', '../up/and/away', '/nonexistent/absolute', '/etc/hostname', 'dangling', './self', '.', 'é/ünïcode',
  't'.repeat(1000), '/'.repeat(3),
].map((target) => Buffer.from(target)).concat([Buffer.from([0xff, 0x2f, 0x61])]);

// Owner-execute decides; group/other bits alone (0o654, 0o611) must not.
const MODES = [0o644, 0o755, 0o700, 0o600, 0o744, 0o654, 0o611, 0o711, 0o444, 0o555];

// Around the 8-byte padding boundary, and past the encoder's 256 KiB chunk.
const SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 100, 4096, 65_537, 300_001];

/**
 * A deterministic tree for `seed`: mostly directories up to a few levels deep,
 * every tenth a single file or single symlink root, every seventh with a
 * 40-level chain of nested directories.
 */
export function generateTree(seed: number): FsTree {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

  const file = (): FsTree => {
    const size = random() < 0.9 ? pick(SIZES.slice(0, 10)) : pick(SIZES);
    const contents = Buffer.alloc(size);
    for (let i = 0; i < size; i++) contents[i] = random() < 0.5 ? 0 : Math.floor(random() * 256);
    return { type: 'regular', mode: pick(MODES), contents };
  };
  const link = (): FsTree => ({ type: 'symlink', target: pick(TARGETS) });
  const directory = (depth: number): FsTree => {
    const names = new Map<string, Buffer>();
    const count = depth >= 4 ? 0 : Math.floor(random() * (depth === 0 ? 9 : 5));
    for (let i = 0; i < count; i++) {
      const name = random() < 0.7 ? pick(NAMES) : Buffer.from(`n${Math.floor(random() * 1000)}`);
      names.set(name.toString('hex'), name);
    }
    const entries = [...names.values()].sort(Buffer.compare).map((name) => {
      const roll = random();
      const node = roll < 0.45 ? file() : roll < 0.65 ? link() : directory(depth + 1);
      return [name, node] as const;
    });
    return { type: 'directory', entries };
  };

  if (seed % 10 === 0) return file();
  if (seed % 10 === 1) return link();
  const tree = directory(0);
  if (seed % 7 !== 3 || tree.type !== 'directory') return tree;
  let chain: FsTree = { type: 'regular', mode: 0o755, contents: Buffer.from('bottom\n') };
  for (let level = 0; level < 40; level++) chain = { type: 'directory', entries: [[Buffer.from('deep'), chain]] };
  const entries = [...tree.entries.filter(([name]) => name.toString() !== 'deep'), [Buffer.from('deep'), chain] as const];
  return { type: 'directory', entries: entries.sort(([a], [b]) => Buffer.compare(a, b)) };
}
