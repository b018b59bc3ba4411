// Garbage collection planning at scale: the pure planner over 100k and 1M
// synthetic paths, and loading 100k paths from a real SQLite index then
// planning (and the whole dry run), each case in a fresh process so that its
// peak memory is its own (bench/lib/gc-case.ts). Goals, reported and not
// asserted: planning a million paths takes seconds, and memory stays within a
// few hundred MiB.

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Benchmark, BenchOptions, BenchOutcome } from './lib/benchmark.ts';

const caseScript = fileURLToPath(new URL('./lib/gc-case.ts', import.meta.url));

function runCase(...args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [caseScript, ...args], { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`gc case ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

async function runGcBench(options: BenchOptions): Promise<BenchOutcome> {
  const sizes = options.quick ? [10_000, 100_000] : [100_000, 1_000_000];
  const sqliteSize = options.quick ? 10_000 : 100_000;
  const planner: Record<string, unknown>[] = [];
  for (const paths of sizes) {
    options.log(`planner, ${paths} synthetic paths…`);
    planner.push(await runCase('planner', String(paths)));
  }
  const dir = await mkdtemp(join(tmpdir(), 'larder-bench-gc-'));
  let sqlite: { fill: Record<string, unknown>; load: Record<string, unknown>; dryRun: Record<string, unknown> };
  try {
    options.log(`filling a SQLite index with ${sqliteSize} paths…`);
    const fill = await runCase('fill', String(sqliteSize), dir);
    options.log('loading and planning from it…');
    const load = await runCase('load', dir);
    options.log('a whole dry run on it…');
    const dryRun = await runCase('dry-run', dir);
    sqlite = { fill, load, dryRun };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const { load, dryRun } = sqlite;
  const table = [
    '| case | paths | references | load s | plan s | RSS before MiB | peak RSS MiB |',
    '|---|---|---|---|---|---|---|',
    ...planner.map((c) => `| planner (pure) | ${c.paths} | ${c.refs} | – | ${c.medianPlanSeconds} | ${c.rssWithGraphMiB} | ${c.peakRssMiB} |`),
    `| SQLite index: load + plan | ${load.paths} | ${load.refs} | ${load.loadSeconds} | ${load.planSeconds} | ${load.rssBeforeMiB} | ${load.peakRssMiB} |`,
    `| SQLite index: whole dry run | ${dryRun.paths} | | | ${dryRun.seconds} (all) | ${dryRun.rssBeforeMiB} | ${dryRun.peakRssMiB} |`,
  ].join('\n');
  return {
    result: {
      setup: {
        shape:
          '1% popular base paths; the rest in builds of 200 paths, each path referring to 2 bases, 2 earlier paths of its build and (1 in 50) one of the build before; accesses by build over 90 days; NAR sizes 1 KiB·2^(16u²); 50 pins on recent build tops; narinfo rows of 700 bytes',
        policy: 'retention 30 days, max-size 20% of all NAR bytes',
        process: 'each case in a fresh node process; peak RSS is its VmHWM, reset before planning or loading where the kernel allows',
        planRepetitions: 3,
      },
      planner,
      sqlite,
    },
    table,
  };
}

export const benchmark: Benchmark = {
  name: 'gc',
  description: 'garbage collection planning over 100k and 1M synthetic paths, and loading 100k from SQLite',
  run: runGcBench,
};
