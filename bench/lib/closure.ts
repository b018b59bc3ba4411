// A synthetic closure shaped like real software, built once with nix-build:
// a layered DAG (each path refers to a few paths of earlier layers, like
// libraries under applications), with mixed sizes (directories of many small
// files of a few KiB, single files of 1-10 MiB, a couple of 50+ MiB ones) and
// half the bytes compressible source-like text, half random bytes. The plan
// is deterministic (fixed seed); a per-run nonce in every name and in every
// path's contents makes the store paths new each run.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface ClosureShape {
  /** At least this many store paths (the top path included). */
  readonly minPaths: number;
  /** At least this many bytes of payload (the NARs are a little larger). */
  readonly minBytes: number;
  /** Paths that are directories of small files. */
  readonly smallPaths: number;
  /** Single-file paths of 50+ MiB. */
  readonly largePaths: number;
}

export const FULL_SHAPE: ClosureShape = { minPaths: 200, minBytes: 512 * MiB, smallPaths: 150, largePaths: 2 };
export const QUICK_SHAPE: ClosureShape = { minPaths: 60, minBytes: 100 * MiB, smallPaths: 40, largePaths: 0 };

type Content = 'text' | 'random';

interface PlannedPath {
  /** Attribute name, also part of the store path name. */
  readonly name: string;
  readonly layer: number;
  /** `files`: a tree of small files; `blob`: one data file; `top`: refers to every sink. */
  readonly kind: 'files' | 'blob' | 'top';
  content: Content;
  readonly bytes: number;
  /** `files`: size of each small file (the last one of a directory may be shorter). */
  readonly fileSize: number;
  /** `files`: number of subdirectories the bytes are spread over. */
  readonly dirs: number;
  /** Offset into the text corpus where this path's text starts. */
  readonly textOffset: number;
  readonly deps: string[];
}

/** mulberry32: a small seeded PRNG, so the plan is the same every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LAYERS = 8;
const CORPUS_SIZE = 16 * MiB;

export function planClosure(shape: ClosureShape): PlannedPath[] {
  const random = prng(0x1a7de5);
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const paths: PlannedPath[] = [];
  const add = (p: Omit<PlannedPath, 'content' | 'textOffset' | 'deps'>) =>
    paths.push({ ...p, content: 'text', textOffset: between(0, CORPUS_SIZE - 1), deps: [] });

  // Big shared libraries sit at the bottom of the graph.
  for (let i = 0; i < shape.largePaths; i++) {
    add({ name: `large${i}`, layer: i % 2, kind: 'blob', bytes: between(50 * MiB, 72 * MiB), fileSize: 0, dirs: 0 });
  }
  // Directories of small files; every tenth is a "package" of a few hundred files in several directories.
  for (let i = 0; i < shape.smallPaths; i++) {
    const fileSize = between(1 * KiB, 8 * KiB);
    const files = i % 10 === 9 ? between(300, 600) : between(8, 64);
    add({ name: `small${i}`, layer: between(0, LAYERS - 1), kind: 'files', bytes: files * fileSize, fileSize, dirs: i % 10 === 9 ? between(4, 12) : 1 });
  }
  // Single files of 1-10 MiB until both the path count and the byte total are reached.
  const total = () => paths.reduce((sum, p) => sum + p.bytes, 0);
  for (let i = 0; paths.length + 1 < shape.minPaths || total() < shape.minBytes; i++) {
    add({ name: `medium${i}`, layer: between(0, LAYERS - 1), kind: 'blob', bytes: between(1 * MiB, 10 * MiB), fileSize: 0, dirs: 0 });
  }

  // Half the bytes (and about half the paths) compressible text, half random: biggest first, to the kind behind.
  const bytesOf: Record<Content, number> = { text: 0, random: 0 };
  for (const p of [...paths].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name))) {
    p.content = bytesOf.text <= bytesOf.random ? 'text' : 'random';
    bytesOf[p.content] += p.bytes;
  }

  // References: one to four paths of earlier layers, half of them from the layer just below.
  for (const p of paths) {
    if (p.layer === 0) continue;
    const below = paths.filter((q) => q.layer < p.layer);
    const justBelow = below.filter((q) => q.layer === p.layer - 1);
    const wanted = between(1, 4);
    for (let k = 0; k < wanted * 3 && p.deps.length < wanted; k++) {
      const pool = justBelow.length > 0 && random() < 0.5 ? justBelow : below;
      const dep = pool[Math.floor(random() * pool.length)];
      if (dep && !p.deps.includes(dep.name)) p.deps.push(dep.name);
    }
  }
  // The top path refers to every path nothing else refers to, so its closure is everything.
  const referred = new Set(paths.flatMap((p) => p.deps));
  paths.push({
    name: 'top',
    layer: LAYERS,
    kind: 'top',
    content: 'text',
    bytes: 0,
    fileSize: 0,
    dirs: 0,
    textOffset: 0,
    deps: paths.filter((p) => !referred.has(p.name)).map((p) => p.name),
  });
  return paths.sort((a, b) => a.layer - b.layer);
}

/** Source-like text (indentation, identifiers, keywords, numbers, comments): zstd shrinks it a few times. */
export function textCorpus(size: number): Buffer {
  const random = prng(0xc0ffee);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const syllables = ['ka', 'lo', 're', 'mi', 'tu', 'sen', 'dor', 'pa', 'vix', 'ul', 'ne', 'qua', 'zo', 'ti', 'ber', 'an', 'fy', 'gro', 'ish', 'mek'];
  const words = Array.from({ length: 1500 }, () => Array.from({ length: 2 + Math.floor(random() * 3) }, () => pick(syllables)).join(''));
  const ident = () => (random() < 0.5 ? pick(words) : `${pick(words)}${pick(words)[0]!.toUpperCase()}${pick(words).slice(1)}`);
  const keywords = ['const', 'let', 'return', 'if', 'for', 'while', 'function', 'await', 'yield', 'import', 'export'];
  const templates: Array<() => string> = [
    () => `const ${ident()} = ${ident()}(${ident()}, ${Math.floor(random() * 1000)});`,
    () => `if (${ident()}.${ident()} ${pick(['<', '>', '===', '!=='])} ${Math.floor(random() * 4096)}) {`,
    () => `}`,
    () => `return ${ident()}.${ident()}(${ident()});`,
    () => `// ${Array.from({ length: 4 + Math.floor(random() * 8) }, () => pick(words)).join(' ')}`,
    () => `${pick(keywords)} ${ident()} ${pick(['=', '+=', 'of', 'in'])} ${ident()}[${Math.floor(random() * 64)}];`,
    () => `export function ${ident()}(${ident()}: ${pick(['string', 'number', 'Buffer', 'boolean'])}): void {`,
    () => `  "${pick(words)}": "${pick(words)}-${Math.floor(random() * 100000).toString(16)}",`,
  ];
  const out = Buffer.allocUnsafe(size);
  let length = 0;
  while (length < size) {
    const line = `${'  '.repeat(Math.floor(random() * 5))}${pick(templates)()}\n`;
    length += out.write(line, length);
  }
  return out;
}

export interface BuiltClosure {
  readonly top: string;
  /** Every store path of the closure with its NAR size. */
  readonly paths: ReadonlyArray<{ path: string; narSize: number }>;
  readonly narBytes: number;
  readonly buildSeconds: number;
  readonly nonce: string;
  /** What the plan put in it. */
  readonly mix: { textBytes: number; randomBytes: number; smallFiles: number; smallFilePaths: number; mediumPaths: number; largePaths: number };
}

function sh(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function builderScript(p: PlannedPath, nonce: string, corpus: string): string {
  const refs = p.deps.map((d) => `\${${d}}`).join(' ');
  const lines = ['mkdir $out', `echo ${sh(`${p.name} ${nonce}`)} ${refs ? `'${refs}'` : ''} > $out/deps`];
  // A source of `bytes` bytes of this path's kind of content, starting `skip` bytes into its text.
  const source = (bytes: number, skip: number): string => {
    if (p.content === 'random') return `head -c ${bytes} /dev/urandom`;
    const offset = (p.textOffset + skip) % CORPUS_SIZE;
    const copies = Math.ceil((offset + bytes) / CORPUS_SIZE);
    const input = copies === 1 ? `tail -c +${offset + 1} ${corpus}` : `cat ${Array(copies).fill(corpus).join(' ')} | tail -c +${offset + 1}`;
    return `${input} | head -c ${bytes}`;
  };
  if (p.kind === 'blob') lines.push(`${source(p.bytes, 0)} > $out/data`);
  if (p.kind === 'files') {
    const perDir = Math.ceil(p.bytes / p.dirs);
    for (let d = 0; d < p.dirs; d++) {
      const dir = `$out/share/${p.name}/d${d}`;
      lines.push(`mkdir -p ${dir}`, `${source(perDir, d * perDir)} | split -a 4 -b ${p.fileSize} - ${dir}/f`);
    }
  }
  return lines.join('\n');
}

export function closureExpression(plan: readonly PlannedPath[], nonce: string, corpus: string): string {
  const bindings = plan.map(
    (p) => `  ${p.name} = derivation {
    name = "bench-${p.name}-${nonce}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" ${JSON.stringify(builderScript(p, nonce, corpus))} ];
  };`,
  );
  return `rec {\n${bindings.join('\n')}\n}\n`;
}

/** The private Nix these benchmarks drive: root single-user, no sandbox, no substituters of its own. */
const NIX_CONFIG = [
  'experimental-features = nix-command flakes',
  'build-users-group =',
  'sandbox = false',
  'substituters =',
  'narinfo-cache-negative-ttl = 0',
];

/**
 * Environments for that Nix, `extra` lines added to its configuration. Each gets a fresh narinfo
 * disk cache under `workDir`: Nix otherwise remembers for 30 days what it uploaded or fetched.
 */
export function benchNixEnv(workDir: string): (extra?: readonly string[]) => NodeJS.ProcessEnv {
  return (extra = []) => ({
    ...process.env,
    NIX_CONFIG: [...NIX_CONFIG, ...extra].join('\n'),
    XDG_CACHE_HOME: join(workDir, `xdg-${randomBytes(4).toString('hex')}`),
  });
}

export function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, maxBuffer: 256 * MiB, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.slice(0, 4).join(' ')}… failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** Builds the planned closure in the local store. */
export async function buildClosure(shape: ClosureShape, workDir: string, env: NodeJS.ProcessEnv, jobs: number): Promise<BuiltClosure> {
  const nonce = randomBytes(6).toString('hex');
  const corpus = join(workDir, 'corpus.txt');
  await writeFile(corpus, textCorpus(CORPUS_SIZE));
  const file = join(workDir, 'closure.nix');
  const plan = planClosure(shape);
  await writeFile(file, closureExpression(plan, nonce, corpus));
  const started = performance.now();
  const top = (await run('nix-build', [file, '-A', 'top', '--no-out-link', '--max-jobs', String(jobs), '--cores', '1'], env)).trim();
  const buildSeconds = (performance.now() - started) / 1000;
  const infos = JSON.parse(await run('nix', ['path-info', '--json', '--recursive', top], env)) as Array<{ path: string; narSize: number }>;
  const paths = infos.map((i) => ({ path: i.path, narSize: i.narSize })).sort((a, b) => a.path.localeCompare(b.path));
  const sum = (items: readonly PlannedPath[]) => items.reduce((n, p) => n + p.bytes, 0);
  const mix = {
    textBytes: sum(plan.filter((p) => p.content === 'text')),
    randomBytes: sum(plan.filter((p) => p.content === 'random')),
    smallFiles: plan.filter((p) => p.kind === 'files').reduce((n, p) => n + Math.ceil(p.bytes / p.fileSize), 0),
    smallFilePaths: plan.filter((p) => p.kind === 'files').length,
    mediumPaths: plan.filter((p) => p.name.startsWith('medium')).length,
    largePaths: plan.filter((p) => p.name.startsWith('large')).length,
  };
  return { top, paths, narBytes: paths.reduce((n, p) => n + p.narSize, 0), buildSeconds, nonce, mix };
}

/** Removes the closure and its derivations from the local store; failures are reported, not thrown. */
export async function deleteClosure(closure: BuiltClosure, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const outputs = closure.paths.map((p) => p.path);
  try {
    const drvs = (await run('nix-store', ['--query', '--deriver', ...outputs], env))
      .split('\n')
      .filter((line) => line.endsWith('.drv'));
    await run('nix-store', ['--delete', ...outputs], env);
    await run('nix-store', ['--delete', ...drvs], env).catch(() => {});
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
