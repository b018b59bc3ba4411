// `npm run build` (and `npm pack`/`npm publish` through `prepack`): compiles
// bin/ and src/ to JavaScript in dist/ for an installed package. Node strips
// TypeScript types itself, but never for files under node_modules
// (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING), so a published package must
// carry JavaScript. A clone needs none of this: `node bin/larder.ts` runs the
// sources as they are.
//
// tsc (tsconfig.build.json) type-checks, erases the types and rewrites relative
// `.ts` import specifiers to `.js`. What it cannot see is a module named by URL,
// such as a worker thread's `new URL('./worker.ts', import.meta.url)`; those
// are rewritten here, and the build fails if any relative `.ts` name is left
// in dist/, since it would name a file that the package does not contain.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const entry = join(dist, 'bin', 'larder.js');

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return jsFiles(path);
    return e.name.endsWith('.js') ? [path] : [];
  });
}

rmSync(dist, { recursive: true, force: true });
const tsc = join(dirname(fileURLToPath(import.meta.resolve('typescript/package.json'))), 'bin', 'tsc');
try {
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
} catch {
  process.stderr.write('build: tsc failed; dist/ is incomplete\n');
  rmSync(dist, { recursive: true, force: true });
  process.exit(1);
}

// `new URL('./x.ts', import.meta.url)`, with either quote: the module is x.js once compiled.
const URL_OF_TS = /new URL\((['"])(\.{1,2}\/[^'"]*?)\.ts\1(\s*,\s*import\.meta\.url\s*\))/g;
// Any relative name of a .ts file in a string literal.
const RELATIVE_TS = /(['"`])\.{1,2}\/[^'"`\n]*\.ts\1/g;
const leftovers: string[] = [];
for (const file of jsFiles(dist)) {
  const text = readFileSync(file, 'utf8');
  const rewritten = text.replace(URL_OF_TS, (_, quote: string, path: string, rest: string) => `new URL(${quote}${path}.js${quote}${rest}`);
  if (rewritten !== text) writeFileSync(file, rewritten);
  for (const match of rewritten.matchAll(RELATIVE_TS)) leftovers.push(`${relative(root, file)}: ${match[0]}`);
}
if (leftovers.length > 0) {
  process.stderr.write(`build: compiled files still name .ts modules (they would be missing when installed):\n  ${leftovers.join('\n  ')}\n`);
  process.exit(1);
}
if (!existsSync(entry)) {
  process.stderr.write(`build: ${relative(root, entry)} was not produced\n`);
  process.exit(1);
}
chmodSync(entry, 0o755);
process.stdout.write(`build: ${relative(root, dist)}/ ready (${jsFiles(dist).length} files)\n`);
