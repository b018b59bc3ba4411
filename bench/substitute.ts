// Real substitution: `nix-store -r` of a generated closure (hundreds of
// paths, hundreds of MiB) into a fresh, empty store (on tmpfs when /dev/shm
// is there: creating files on this VM's disk cost Nix 0.9 ms per openat and
// varied its time threefold from run to run), from larder and from
// nginx serving the very files larder stored (its filesystem store is the
// standard binary-cache layout). The closure is built once with nix-build
// and pushed to larder with `larder push`; every run then substitutes it into
// a new chroot store (`--store <dir>`) with a fresh narinfo disk cache,
// signatures required (larder's key trusted), `narinfo-cache-negative-ttl =
// 0`, and the private cache's read token in a netrc file (nginx ignores it).
// Goal, reported and not asserted: at most 1.1x nginx's time.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Benchmark, BenchOptions, BenchOutcome } from './lib/benchmark.ts';
import { benchNixEnv, buildClosure, deleteClosure, FULL_SHAPE, QUICK_SHAPE, run, type BuiltClosure } from './lib/closure.ts';
import { Comparison, figureTable, roundOrder, withCpu } from './lib/compare.ts';
import { larderBin } from './lib/larder-server.ts';
import { measure, rssMethod, waitForQuiet } from './lib/measure.ts';
import { nginxVersion, requireNginx } from './lib/nginx.ts';
import { ACCESS_LOGS, CACHE, fetchBody, startPeers, type Peers } from './lib/peers.ts';

const MiB = 1024 * 1024;
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

async function runSubstitute(options: BenchOptions): Promise<BenchOutcome> {
  const { log, quick } = options;
  requireNginx();
  if (spawnSync('nix-store', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('nix is not installed (Debian: apt-get install nix-bin); the substitution benchmark needs it');
  }
  const workers = availableParallelism();
  const shape = quick ? QUICK_SHAPE : FULL_SHAPE;
  const rounds = quick ? 1 : 5;
  const method = rssMethod();
  const loadAtStart = loadavg().map((l) => round(l));

  const workDir = await mkdtemp(join(tmpdir(), 'larder-bench-substitute-'));
  // Where the fresh stores go: tmpfs if there is one, so that the client's disk is not what is measured.
  const storesDir = await mkdtemp(join(await isDirectory('/dev/shm') ? '/dev/shm' : workDir, 'larder-bench-stores-'));
  const nixEnv = benchNixEnv(workDir);

  let closure: BuiltClosure | undefined;
  let peers: Peers | undefined;
  try {
    log(`building a closure of ${shape.minPaths}+ paths and ${shape.minBytes / MiB}+ MiB with nix-build…`);
    closure = await buildClosure(shape, workDir, nixEnv(), workers);
    const built = closure;
    log(`built ${built.paths.length} paths, ${round(built.narBytes / MiB, 1)} MiB of NARs in ${round(built.buildSeconds, 1)} s`);

    peers = await startPeers(workDir, workers);
    const live = peers;
    log(`pushing it to larder (${live.cacheUrl.larder}, ${workers} workers) with larder push…`);
    const pushed = await measure(process.execPath, [larderBin, 'push', live.cacheUrl.larder, built.top], {
      env: { ...nixEnv(), LARDER_TOKEN: live.writeToken },
      method,
      scratchDir: workDir,
    });
    const missing = await live.larder.missing(CACHE, built.paths.map((p) => p.path));
    if (missing.length > 0) throw new Error(`after larder push the cache lacks ${missing.length} paths, e.g. ${missing[0]}`);
    const storedNars = await readdir(join(live.dataDir, 'store', CACHE, 'nar'));
    const publicKeys = await live.larder.publicKeys(CACHE);
    const info = await fetchBody(`${live.cacheUrl.nginx}/nix-cache-info`, {});
    if (info.status !== 200) throw new Error(`nginx answered ${info.status} for nix-cache-info`);

    const netrc = join(workDir, 'netrc');
    await writeFile(netrc, `machine 127.0.0.1 password ${live.readToken}\n`, { mode: 0o600 });
    const substituteFrom = async (url: string, label: string, r: number) => {
      const root = join(storesDir, `store-${label}-${r}`);
      const env = nixEnv([`substituters = ${url}`, `trusted-public-keys = ${publicKeys.join(' ')}`, 'require-sigs = true', `netrc-file = ${netrc}`]);
      try {
        const measured = await measure('nix-store', ['--store', root, '--realise', built.top], { env, method, scratchDir: workDir });
        const requisites = (await run('nix-store', ['--store', root, '--query', '--requisites', built.top], env)).trim().split('\n');
        if (requisites.length !== built.paths.length) throw new Error(`${label}: ${requisites.length} paths substituted, expected ${built.paths.length}`);
        return { ...measured, clientCpuSeconds: measured.cpuSeconds };
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    };

    const comparison = new Comparison();
    const spec = comparison.figure({
      id: 'substitute',
      title: `nix-store -r of ${built.paths.length} paths (${round(built.narBytes / MiB)} MiB of NARs) into an empty store`,
      unit: 's',
      better: 'lower',
      goalRatio: 1.1,
    });
    const servers = { larder: live.larder, nginx: live.nginx };
    for (let r = 1; r <= rounds; r++) {
      const waited = await waitForQuiet(quick ? 3 : 30);
      log(`round ${r}/${rounds}${waited < 0 ? ' (the machine is busy)' : ''}`);
      for (const peer of roundOrder(r)) {
        const { result, serverCpuSeconds, otherCpuSeconds } = await withCpu(servers[peer].pid, () => substituteFrom(live.cacheUrl[peer], peer, r));
        comparison.add(spec, peer, {
          round: r,
          value: round(result.seconds, 3),
          serverCpuSeconds,
          otherCpuSeconds,
          nixCpuSeconds: result.cpuSeconds,
          nixPeakRssKiB: result.maxRssKiB,
        });
        log(`  ${peer.padEnd(6)} ${result.seconds.toFixed(2).padStart(7)} s  (nix ${result.cpuSeconds ?? '?'} CPU s, server ${serverCpuSeconds} CPU s, other processes ${otherCpuSeconds} CPU s)`);
      }
    }
    const figures = comparison.results();
    const maxOther = Math.max(...figures.flatMap((f) => [...f.details.larder, ...f.details.nginx].map((s) => s.otherCpuSeconds)));
    const result = {
      setup: {
        rounds,
        order: 'larder first in odd rounds, nginx first in even ones',
        workers: { larder: `--workers ${workers}`, nginx: `worker_processes ${workers}` },
        closure: { paths: built.paths.length, narBytes: built.narBytes, payload: built.mix, storedNars: storedNars.length, pushSeconds: round(pushed.seconds) },
        compression: 'zstd (larder push, level 3); the same files served by both',
        client: `nix-store --store <fresh dir> --realise <top> (${spawnSync('nix', ['--version'], { encoding: 'utf8' }).stdout.trim()}), fresh XDG_CACHE_HOME, require-sigs = true, narinfo-cache-negative-ttl = 0, netrc with the read token (nginx ignores it)`,
        accessLogs: ACCESS_LOGS,
        accessLogBytes: await live.logBytes(),
        nginx: { version: nginxVersion(), config: live.nginx.config, errorLog: (await live.nginx.errors()) || null },
        pageCache: 'warm (just pushed)',
        storesIn: storesDir.startsWith('/dev/shm') ? 'tmpfs (/dev/shm): each run substitutes into a new chroot store there' : 'the temp directory (no /dev/shm)',
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg().map((l) => round(l)),
        maxOtherCpuSecondsInOneSample: maxOther,
      },
      figures,
    };
    const table = [
      `substitute: ${built.paths.length} paths, ${round(built.narBytes / MiB, 1)} MiB of NARs, ${workers} workers each, ${rounds} round(s), interleaved`,
      figureTable(figures),
      `other processes used at most ${maxOther} CPU s during one sample (0 = a quiet machine); load average ${loadAtStart.join(' ')} at start`,
    ].join('\n');
    return { result, table };
  } finally {
    await peers?.stop();
    if (closure) {
      const problem = await deleteClosure(closure, nixEnv());
      if (problem) log(`could not delete the generated store paths (ignored): ${problem}`);
    }
    await rm(storesDir, { recursive: true, force: true });
    await rm(workDir, { recursive: true, force: true });
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

export const benchmark: Benchmark = {
  name: 'substitute',
  description: 'nix-store -r of a generated closure into an empty store, from larder vs from nginx over the same files',
  run: runSubstitute,
};
