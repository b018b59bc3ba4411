// `npm run bench [-- --quick] [name…]`: runs every benchmark in bench/ (each
// top-level bench/*.ts but this one exports `benchmark`), or the named ones,
// prints their tables and writes bench/results/<name>-<date>[-quick].json.

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import type { Benchmark } from './lib/benchmark.ts';
import { describeMachine } from './lib/machine.ts';

/** JSON indented by two, with arrays of plain values (samples) kept on one line. */
function readableJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\n\s+([^[\]{}]*?)\n\s*\]/g, (_, items: string) => `[${items.split(/,\n\s*/).join(', ')}]`);
}

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const resultsDir = join(benchDir, 'results');

function usage(): never {
  process.stderr.write('usage: node bench/run.ts [--quick] [benchmark…]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const wanted = args.filter((a) => a !== '--quick');
if (wanted.some((a) => a.startsWith('-'))) usage();

const benchmarks: Benchmark[] = [];
for (const file of (await readdir(benchDir)).filter((f) => f.endsWith('.ts') && f !== 'run.ts').sort()) {
  const module = (await import(pathToFileURL(join(benchDir, file)).href)) as { benchmark?: Benchmark };
  if (module.benchmark) benchmarks.push(module.benchmark);
}
const unknown = wanted.filter((name) => !benchmarks.some((b) => b.name === name));
if (unknown.length > 0) {
  process.stderr.write(`no benchmark named ${unknown.join(', ')}; there are: ${benchmarks.map((b) => b.name).join(', ')}\n`);
  process.exit(2);
}
const selected = wanted.length ? benchmarks.filter((b) => wanted.includes(b.name)) : benchmarks;

const machine = describeMachine();
const log = (line: string) => process.stderr.write(`${line}\n`);
log(`machine: ${machine.nproc} CPUs (${machine.cpu}), ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, node ${machine.node}, ${machine.nix ?? 'no nix'}`);

let failures = 0;
for (const bench of selected) {
  log(`\n== ${bench.name}${quick ? ' (quick)' : ''}: ${bench.description}`);
  const date = new Date();
  try {
    const { result, table } = await bench.run({ quick, log });
    const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
    const file = join(resultsDir, `${bench.name}-${stamp}${quick ? '-quick' : ''}.json`);
    await mkdir(resultsDir, { recursive: true });
    await writeFile(file, `${readableJson({ benchmark: bench.name, date: date.toISOString(), quick, machine, ...result })}\n`);
    process.stdout.write(`\n${table}\n\nwritten: ${file}\n`);
  } catch (error) {
    failures++;
    log(`benchmark ${bench.name} failed: ${(error as Error).stack ?? error}`);
  }
}
process.exitCode = failures ? 1 : 0;
