// One garbage collection measurement, run in a process of its own so that its
// peak memory is its own: `node bench/lib/gc-case.ts planner PATHS | fill PATHS DIR |
// load DIR | dry-run DIR`.
// Prints one JSON line. The synthetic cache looks like a busy CI cache: 1% of
// the paths are popular bases (a libc, a shell) that many refer to; the rest
// come in builds of 200 paths pushed one after the other, each path referring
// to 2 bases, to 2 earlier paths of its build and, one time in fifty, to a path
// of the build before; a build's accesses are those of its push, spread over
// 90 days; NAR sizes from 1 KiB to 64 MiB, skewed small; 50 pins on the tops
// of recent builds.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { openSqlite } from '../../src/index/sqlite-driver.ts';
import { migratedIndex } from '../../src/index/sql-index.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { DEFAULT_GC_SETTINGS, runGc } from '../../src/services/gc.ts';
import { loadPathGraph } from '../../src/services/gc-graph.ts';
import { planGc, type PathGraph, type PlanPolicy } from '../../src/services/gc-plan.ts';
import { assembleLarder } from '../../src/services/larder.ts';
import { FilesystemStore } from '../../src/storage/filesystem-store.ts';
import { resetPeak, statusField } from './measure.ts';

const DAY = 86_400_000;
const NOW = 1_800_000_000_000;
const POPULAR = 0.01;
const BUILD = 200;
const PINS = 50;
const NARINFO = 'StorePath: /nix/store/…\n'.padEnd(700, 'x');

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Synthetic {
  readonly graph: PathGraph;
  readonly refs: number;
}

/** The synthetic cache as the planner's graph (one NAR per path). */
function synthesize(n: number): Synthetic {
  const random = prng(n);
  const popular = Math.max(1, Math.floor(n * POPULAR));
  const refStart = new Uint32Array(n + 1);
  const refTargets = new Int32Array(n * 5);
  const accessedAt = new Float64Array(n);
  const builds = Math.ceil((n - popular) / BUILD);
  let e = 0;
  for (let i = 0; i < n; i++) {
    refStart[i] = e;
    if (i < popular) {
      accessedAt[i] = NOW - Math.floor(random() * 90 * DAY);
      continue;
    }
    const build = Math.floor((i - popular) / BUILD);
    const start = popular + build * BUILD;
    // Builds were pushed in order over 90 days; paths are read again now and then.
    accessedAt[i] = NOW - Math.floor(((builds - build) / builds) * 90 * DAY * (random() < 0.1 ? random() : 1));
    const seen = new Set<number>();
    for (let k = 0; k < 2; k++) seen.add(Math.floor(random() * popular));
    if (i > start) for (let k = 0; k < 2; k++) seen.add(start + Math.floor(random() * (i - start)));
    if (build > 0 && random() < 0.02) seen.add(start - BUILD + Math.floor(random() * BUILD));
    for (const t of seen) refTargets[e++] = t;
  }
  refStart[n] = e;
  // 1 KiB · 2^(16 u²): mostly small, some up to 64 MiB.
  const narBytes = Float64Array.from({ length: n }, () => Math.floor(1024 * 2 ** (16 * random() ** 2)));
  const lastTop = n - 1;
  return {
    graph: {
      count: n,
      accessedAt,
      nar: Int32Array.from({ length: n }, (_, i) => i),
      narBytes,
      refStart,
      refTargets: refTargets.slice(0, e),
      // The tops of the 50 builds before the last few.
      pins: Array.from({ length: PINS }, (_, k) => ({ name: `pin-${k}`, path: Math.max(popular, lastTop - (k + 5) * BUILD) })),
    },
    refs: e,
  };
}

function policyFor(graph: PathGraph): PlanPolicy {
  let total = 0;
  for (const b of graph.narBytes) total += b;
  return { keepAccessedSince: NOW - 30 * DAY, maxSize: Math.floor(total * 0.2) };
}

const mib = (kib: number) => Math.round(kib / 102.4) / 10;

function hashPart(i: number): string {
  return encodeNix32(createHash('sha256').update(`path ${i}`).digest()).slice(0, 32);
}

function fileHash(i: number): string {
  return encodeNix32(createHash('sha256').update(`nar ${i}`).digest());
}

async function plannerCase(n: number): Promise<object> {
  const built = performance.now();
  const { graph, refs } = synthesize(n);
  const buildSeconds = (performance.now() - built) / 1000;
  const rssBeforeKiB = statusField(process.pid, 'VmRSS');
  const peakReset = resetPeak(process.pid);
  const samples: number[] = [];
  let plan;
  for (let rep = 0; rep < 3; rep++) {
    const started = performance.now();
    plan = planGc(graph, policyFor(graph));
    samples.push((performance.now() - started) / 1000);
  }
  return {
    case: 'planner',
    paths: n,
    refs,
    graphBuildSeconds: round(buildSeconds),
    planSeconds: samples.map((s) => round(s, 3)),
    medianPlanSeconds: round(samples.sort((a, b) => a - b)[1]!, 3),
    rssWithGraphMiB: mib(rssBeforeKiB),
    peakRssMiB: mib(statusField(process.pid, 'VmHWM')),
    peakResetBeforePlanning: peakReset,
    keptPaths: n - plan!.deletionOrder.length,
    freedPaths: plan!.deletionOrder.length,
    quota: plan!.quota,
    totalBytes: plan!.totalBytes,
  };
}

/** Writes the synthetic cache into a fresh SQLite index at `dir`/index.sqlite. */
async function fillCase(n: number, dir: string): Promise<object> {
  const { graph, refs } = synthesize(n);
  const started = performance.now();
  const db = openSqlite(join(dir, 'index.sqlite'));
  const index = await migratedIndex(db);
  await index.createCache({
    name: 'main',
    public: false,
    priority: 40,
    compression: 'zstd',
    mirror: false,
    createdAt: 0,
    retentionMs: 30 * DAY,
    maxSize: policyFor(graph).maxSize,
    generation: 0,
  });
  const CHUNK = 100;
  await db.transaction(async (tx) => {
    for (let i = 0; i < n; i += CHUNK) {
      const ids = Array.from({ length: Math.min(CHUNK, n - i) }, (_, k) => i + k);
      await tx.run(
        `INSERT INTO nars (cache, file_hash, url, compression, file_size, nar_hash, nar_size, created_at) VALUES ${ids.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        ids.flatMap((id) => ['main', fileHash(id), `nar/${fileHash(id)}.nar.zst`, 'zstd', graph.narBytes[id]!, `sha256:${fileHash(id)}`, graph.narBytes[id]! * 2, 0]),
      );
      await tx.run(
        `INSERT INTO paths (cache, hash_part, base, file_hash, nar_size, file_size, narinfo, created_at, last_access) VALUES ${ids.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        ids.flatMap((id) => [
          'main',
          hashPart(id),
          `${hashPart(id)}-p${id}`,
          fileHash(id),
          graph.narBytes[id]! * 2,
          graph.narBytes[id]!,
          // A narinfo's typical size, so that reading rows costs what it would.
          NARINFO,
          NOW - 100 * DAY,
          graph.accessedAt[id]!,
        ]),
      );
      const edges = ids.flatMap((id) => Array.from(graph.refTargets.subarray(graph.refStart[id]!, graph.refStart[id + 1]!), (t) => [id, t] as const));
      for (let j = 0; j < edges.length; j += 300) {
        const chunk = edges.slice(j, j + 300);
        await tx.run(
          `INSERT INTO refs (cache, hash_part, ref_hash_part) VALUES ${chunk.map(() => '(?, ?, ?)').join(', ')}`,
          chunk.flatMap(([s, t]) => ['main', hashPart(s), hashPart(t)]),
        );
      }
    }
    for (const pin of graph.pins) {
      await tx.run('INSERT INTO pins (cache, name, hash_part, base, created_at) VALUES (?, ?, ?, ?, ?)', ['main', pin.name, hashPart(pin.path), 'x', 0]);
    }
  });
  await index.close();
  return { case: 'fill', paths: n, refs, fillSeconds: round((performance.now() - started) / 1000) };
}

/** Loads the index at `dir` into the planner's graph and plans: what every run does first. */
async function loadCase(dir: string): Promise<object> {
  const index = await migratedIndex(openSqlite(join(dir, 'index.sqlite')));
  const cache = (await index.getCache('main'))!;
  const rssBeforeKiB = statusField(process.pid, 'VmRSS');
  const peakReset = resetPeak(process.pid);
  const loadStarted = performance.now();
  const { graph } = await loadPathGraph(index, 'main');
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const planStarted = performance.now();
  const plan = planGc(graph, { keepAccessedSince: NOW - cache.retentionMs! - DEFAULT_GC_SETTINGS.accessSlackMs, maxSize: cache.maxSize });
  const planSeconds = (performance.now() - planStarted) / 1000;
  await index.close();
  return {
    case: 'sqlite-load',
    paths: graph.count,
    refs: graph.refTargets.length,
    loadSeconds: round(loadSeconds, 3),
    planSeconds: round(planSeconds, 3),
    rssBeforeMiB: mib(rssBeforeKiB),
    peakRssMiB: mib(statusField(process.pid, 'VmHWM')),
    peakResetBeforeLoading: peakReset,
    freedPaths: plan.deletionOrder.length,
  };
}

/** `larder gc --dry-run`'s whole work on the index at `dir`: load, plan, report, orphan scan. */
async function dryRunCase(dir: string): Promise<object> {
  const index = await migratedIndex(openSqlite(join(dir, 'index.sqlite')));
  const store = await FilesystemStore.open(join(dir, 'store'));
  const larder = assembleLarder(index, store, { storeDir: '/nix/store', keyNamePrefix: 'bench-', maxNarSize: 2 ** 40, maxSmallBodySize: 2 ** 24, now: () => NOW });
  const rssBeforeKiB = statusField(process.pid, 'VmRSS');
  const peakReset = resetPeak(process.pid);
  const started = performance.now();
  const report = await runGc(larder, 'main', { dryRun: true });
  const seconds = (performance.now() - started) / 1000;
  await larder.close();
  return {
    case: 'sqlite-dry-run',
    paths: report.paths,
    seconds: round(seconds, 3),
    timings: report.timings,
    rssBeforeMiB: mib(rssBeforeKiB),
    peakRssMiB: mib(statusField(process.pid, 'VmHWM')),
    peakResetBeforeRun: peakReset,
    freedPaths: report.freed.paths,
  };
}

function round(n: number, digits = 2): number {
  return Number(n.toFixed(digits));
}

const [kind, arg, dirArg] = process.argv.slice(2);
let result: object;
if (kind === 'planner' && Number.isSafeInteger(Number(arg))) result = await plannerCase(Number(arg));
else if (kind === 'fill' && Number.isSafeInteger(Number(arg)) && dirArg) result = await fillCase(Number(arg), dirArg);
else if (kind === 'load' && arg) result = await loadCase(arg);
else if (kind === 'dry-run' && arg) result = await dryRunCase(arg);
else {
  process.stderr.write('usage: node bench/lib/gc-case.ts planner PATHS | fill PATHS DIR | load DIR | dry-run DIR\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
