// `larder push` against stock `nix copy`, in one run on one machine: the same
// freshly built closure (200+ paths, 500+ MiB of NARs) copied into an empty
// cache by (1) `larder push`, (2) the same at zstd level 1, (3) `nix copy --to
// http://…` into the same larder server and (4) `nix copy --to file://…`,
// repetitions interleaved; and, as a floor, (5) `larder push` into a bare
// node:http server that reads every upload and drops it (bench/lib/upload-sink.ts),
// which says how fast the client alone can go here, whatever the server costs.
// Reports wall time (median and samples), the client's peak RSS, the
// server's RSS, and the ratios to larder. Goals are reported, not asserted:
// larder push at least 3x faster than nix copy over HTTP, and no slower than
// nix copy to a local directory.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Benchmark, BenchOptions, BenchOutcome } from './lib/benchmark.ts';
import { benchNixEnv, buildClosure, deleteClosure, FULL_SHAPE, QUICK_SHAPE, type BuiltClosure } from './lib/closure.ts';
import { LarderServer, larderBin } from './lib/larder-server.ts';
import { UploadSink } from './lib/upload-sink.ts';
import {
  machineBusySeconds,
  measure,
  median,
  processCpuSeconds,
  resetPeak,
  rssMethod,
  statusField,
  waitForQuiet,
  type Measured,
  type RssMethod,
} from './lib/measure.ts';

const MiB = 1024 * 1024;

type ContenderId = 'larder-push' | 'larder-push-level-1' | 'nix-copy-http' | 'nix-copy-file' | 'larder-push-sink';

interface Sample {
  readonly repetition: number;
  readonly seconds: number;
  /** Peak RSS of the client process, KiB. */
  readonly clientMaxRssKiB: number;
  /** User + system CPU seconds of the client (null without GNU time). */
  readonly clientCpuSeconds: number | null;
  /** Peak RSS of the larder server during this run, KiB (null when the server took no part). */
  readonly serverPeakRssKiB: number | null;
  /** CPU seconds the larder server used during this run (null when it took no part). */
  readonly serverCpuSeconds: number | null;
  /** CPU seconds used meanwhile by everything else on the machine (other processes, and kernel threads such as writeback): high means a noisy sample. */
  readonly otherCpuSeconds: number;
  /** Seconds spent waiting for the machine to be idle before this run (-1: it never was). */
  readonly waitedForQuietSeconds: number;
  /** Compressed NAR bytes the destination holds afterwards. */
  readonly storedNarBytes: number;
}

type RunFigures = Omit<Sample, 'otherCpuSeconds' | 'waitedForQuietSeconds'> & { readonly busySeconds: number };

interface ContenderSummary {
  readonly label: string;
  readonly command: string;
  readonly medianSeconds: number;
  readonly samplesSeconds: readonly number[];
  readonly clientPeakRssKiB: number;
  readonly serverPeakRssKiB: number | null;
  readonly medianClientCpuSeconds: number | null;
  readonly medianServerCpuSeconds: number | null;
  /** The most CPU other processes used during one of its samples: a noise indicator. */
  readonly maxOtherCpuSeconds: number;
  readonly storedNarBytes: number;
  readonly samples: readonly Sample[];
}

interface Contender {
  readonly id: ContenderId;
  readonly label: string;
  readonly command: string;
  /** Runs once into a fresh, empty destination and checks that the whole closure arrived. */
  run(repetition: number): Promise<RunFigures>;
}

async function narBytesIn(dir: string): Promise<{ files: number; bytes: number }> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let bytes = 0;
  for (const name of names) bytes += (await stat(join(dir, name))).size;
  return { files: names.length, bytes };
}

/** How long to wait before each run for other processes on the machine to go quiet. */
const QUIET_WAIT_SECONDS = 120;

const round = (n: number, digits = 2) => Number(n.toFixed(digits));
const medianOrNull = (values: ReadonlyArray<number | null>): number | null =>
  values.every((v): v is number => v !== null) && values.length > 0 ? round(median(values)) : null;
const mib = (kib: number) => round(kib / 1024, 1);
const cpu = (seconds: number | null) => (seconds === null ? '?' : `${seconds.toFixed(1)} s`);
/** A sample's figures about the client, from its measured run. */
const clientFigures = (measured: Measured) => ({ seconds: measured.seconds, clientMaxRssKiB: measured.maxRssKiB, clientCpuSeconds: measured.cpuSeconds });

export async function runPush(options: BenchOptions): Promise<BenchOutcome> {
  const { log, quick } = options;
  const benchStarted = performance.now();
  const shape = quick ? QUICK_SHAPE : FULL_SHAPE;
  const repetitions = quick ? 1 : 3;
  if (spawnSync('nix-store', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('nix is not installed (Debian: apt-get install nix-bin); the push benchmark needs it');
  }
  const method: RssMethod = rssMethod();
  if (method === 'proc-sampling') {
    log('GNU time (/usr/bin/time) is missing (Debian: apt-get install time): peak RSS is sampled from /proc every 50 ms instead');
  }

  const loadAtStart = loadavg().map((l) => round(l));
  if (loadAtStart[0]! > availableParallelism() / 4) {
    log(`warning: the machine is busy (load average ${loadAtStart.join(' ')} on ${availableParallelism()} CPUs): wall times will be noisy; CPU times less so`);
  }
  const workDir = await mkdtemp(join(tmpdir(), 'larder-bench-push-'));
  const nixEnv = benchNixEnv(workDir);

  let closure: BuiltClosure | undefined;
  let server: LarderServer | undefined;
  let sinkServer: UploadSink | undefined;
  try {
    log(`building a closure of ${shape.minPaths}+ paths and ${shape.minBytes / MiB}+ MiB with nix-build…`);
    closure = await buildClosure(shape, workDir, nixEnv(), availableParallelism());
    const built = closure;
    log(`built ${built.paths.length} paths, ${round(built.narBytes / MiB, 1)} MiB of NARs in ${round(built.buildSeconds, 1)} s: ${built.top}`);

    const dataDir = join(workDir, 'server-data');
    const live = await LarderServer.start(dataDir, nixEnv());
    server = live;
    const serverRssBefore = statusField(live.pid, 'VmRSS');
    const peakResettable = resetPeak(live.pid);
    log(`larder serving ${live.url} (pid ${live.pid}, RSS ${mib(serverRssBefore)} MiB)`);
    const allPaths = built.paths.map((p) => p.path);
    const sink = await UploadSink.start();
    sinkServer = sink;

    /** Runs a client against a fresh larder cache, then checks and removes the cache. */
    const againstServer = async (id: ContenderId, repetition: number, client: (cache: { url: string; token: string }) => Promise<Measured>): Promise<RunFigures> => {
      const name = `bench-${id}-${repetition}-${randomBytes(3).toString('hex')}`;
      const cache = await live.freshCache(name);
      const peakBefore = statusField(live.pid, 'VmHWM');
      if (peakResettable) resetPeak(live.pid);
      const serverCpuBefore = processCpuSeconds(live.pid);
      const busyBefore = machineBusySeconds();
      const measured = await client(cache).catch((error: unknown) => {
        const death = live.death();
        throw death ? new Error(`${(error as Error).message}\n${death}`) : error;
      });
      const busySeconds = machineBusySeconds() - busyBefore;
      const serverPeak = peakResettable ? statusField(live.pid, 'VmHWM') : Math.max(peakBefore, statusField(live.pid, 'VmHWM'));
      const serverCpu = processCpuSeconds(live.pid) - serverCpuBefore;
      const missing = await live.missing(name, allPaths);
      if (missing.length > 0) throw new Error(`${id}: the cache lacks ${missing.length} of ${allPaths.length} paths after the run, e.g. ${missing[0]}`);
      const stored = await narBytesIn(join(dataDir, 'store', name, 'nar'));
      await live.deleteCache(name);
      return {
        repetition,
        ...clientFigures(measured),
        serverPeakRssKiB: serverPeak,
        serverCpuSeconds: round(serverCpu),
        storedNarBytes: stored.bytes,
        busySeconds,
      };
    };

    const contenders: Contender[] = [
      {
        id: 'larder-push',
        label: 'larder push',
        command: `LARDER_TOKEN=… node bin/larder.ts push ${live.url}/<cache> <top>`,
        run: (repetition) =>
          againstServer('larder-push', repetition, (cache) =>
            measure(process.execPath, [larderBin, 'push', cache.url, built.top], {
              env: { ...nixEnv(), LARDER_TOKEN: cache.token },
              method,
              scratchDir: workDir,
            }),
          ),
      },
      {
        // The same push at zstd level 1: what the compression level costs and saves (stored MiB).
        id: 'larder-push-level-1',
        label: 'larder push (level 1)',
        command: `LARDER_TOKEN=… node bin/larder.ts push --compression-level 1 ${live.url}/<cache> <top>`,
        run: (repetition) =>
          againstServer('larder-push-level-1', repetition, (cache) =>
            measure(process.execPath, [larderBin, 'push', '--compression-level', '1', cache.url, built.top], {
              env: { ...nixEnv(), LARDER_TOKEN: cache.token },
              method,
              scratchDir: workDir,
            }),
          ),
      },
      {
        id: 'nix-copy-http',
        label: 'nix copy (http, larder)',
        command: `nix copy --to '${live.url}/<cache>?compression=zstd' <top>  (netrc-file with the write token)`,
        run: (repetition) =>
          againstServer('nix-copy-http', repetition, async (cache) => {
            const netrc = join(workDir, `netrc-${randomBytes(4).toString('hex')}`);
            await writeFile(netrc, `machine ${new URL(live.url).hostname} password ${cache.token}\n`, { mode: 0o600 });
            try {
              return await measure('nix', ['copy', '--to', `${cache.url}?compression=zstd`, built.top], {
                env: nixEnv([`netrc-file = ${netrc}`]),
                method,
                scratchDir: workDir,
              });
            } finally {
              await rm(netrc, { force: true });
            }
          }),
      },
      {
        id: 'nix-copy-file',
        label: 'nix copy (file://)',
        command: `nix copy --to 'file://<fresh dir>?compression=zstd' <top>`,
        run: async (repetition) => {
          const dir = join(workDir, `file-cache-${repetition}-${randomBytes(3).toString('hex')}`);
          await mkdir(dir);
          try {
            const busyBefore = machineBusySeconds();
            const measured = await measure('nix', ['copy', '--to', `file://${dir}?compression=zstd`, built.top], {
              env: nixEnv(),
              method,
              scratchDir: workDir,
            });
            const busyAfter = machineBusySeconds();
            const narinfos = (await readdir(dir)).filter((n) => n.endsWith('.narinfo')).length;
            if (narinfos !== allPaths.length) throw new Error(`nix-copy-file: ${narinfos} narinfos in ${dir}, expected ${allPaths.length}`);
            const stored = await narBytesIn(join(dir, 'nar'));
            return {
              repetition,
              ...clientFigures(measured),
              serverPeakRssKiB: null,
              serverCpuSeconds: null,
              storedNarBytes: stored.bytes,
              busySeconds: busyAfter - busyBefore,
            };
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      },
      {
        // The floor: the same push into a server that takes every upload and does nothing with it.
        id: 'larder-push-sink',
        label: 'larder push (bare sink)',
        command: `LARDER_TOKEN=… node bin/larder.ts push ${sink.url}/main <top>  (a bare node:http server that reads each upload and drops it)`,
        run: async (repetition) => {
          await sink.takeStats();
          const sinkCpuBefore = processCpuSeconds(sink.pid);
          const busyBefore = machineBusySeconds();
          const measured = await measure(process.execPath, [larderBin, 'push', `${sink.url}/main`, built.top], {
            env: { ...nixEnv(), LARDER_TOKEN: 'unchecked' },
            method,
            scratchDir: workDir,
          });
          const busySeconds = machineBusySeconds() - busyBefore;
          const sinkCpu = processCpuSeconds(sink.pid) - sinkCpuBefore;
          const received = await sink.takeStats();
          if (received.narinfos !== allPaths.length) throw new Error(`larder-push-sink: the sink got ${received.narinfos} narinfos, expected ${allPaths.length}`);
          return {
            repetition,
            ...clientFigures(measured),
            serverPeakRssKiB: null,
            serverCpuSeconds: round(sinkCpu),
            storedNarBytes: received.narBytes,
            busySeconds,
          };
        },
      },
    ];

    const samples = new Map<ContenderId, Sample[]>(contenders.map((c) => [c.id, []]));
    for (let repetition = 1; repetition <= repetitions; repetition++) {
      for (const contender of contenders) {
        const waited = await waitForQuiet(QUIET_WAIT_SECONDS);
        if (waited < 0) log(`  (the machine stayed busy for ${QUIET_WAIT_SECONDS} s: running anyway)`);
        const { busySeconds, ...figures } = await contender.run(repetition);
        const own = (figures.clientCpuSeconds ?? 0) + (figures.serverCpuSeconds ?? 0);
        const sample: Sample = { ...figures, seconds: figures.seconds, otherCpuSeconds: round(Math.max(0, busySeconds - own), 1), waitedForQuietSeconds: waited };
        samples.get(contender.id)!.push(sample);
        log(
          `  #${repetition} ${contender.label.padEnd(24)} ${sample.seconds.toFixed(2).padStart(7)} s` +
            `  client ${cpu(sample.clientCpuSeconds)} CPU, ${mib(sample.clientMaxRssKiB)} MiB` +
            (sample.serverPeakRssKiB === null ? '' : `  server ${cpu(sample.serverCpuSeconds)} CPU, peak ${mib(sample.serverPeakRssKiB)} MiB`) +
            (sample.otherCpuSeconds > 0.5 ? `  [other processes: ${sample.otherCpuSeconds} s CPU]` : ''),
        );
      }
    }
    const serverRssAfter = statusField(live.pid, 'VmRSS');
    const serverPeak = statusField(live.pid, 'VmHWM');

    const summarize = (c: Contender): ContenderSummary => {
      const list = samples.get(c.id)!;
      const serverPeaks = list.map((s) => s.serverPeakRssKiB).filter((v): v is number => v !== null);
      return {
        label: c.label,
        command: c.command,
        medianSeconds: round(median(list.map((s) => s.seconds)), 3),
        samplesSeconds: list.map((s) => round(s.seconds, 3)),
        clientPeakRssKiB: Math.max(...list.map((s) => s.clientMaxRssKiB)),
        serverPeakRssKiB: serverPeaks.length ? Math.max(...serverPeaks) : null,
        medianClientCpuSeconds: medianOrNull(list.map((s) => s.clientCpuSeconds)),
        medianServerCpuSeconds: medianOrNull(list.map((s) => s.serverCpuSeconds)),
        maxOtherCpuSeconds: Math.max(...list.map((s) => s.otherCpuSeconds)),
        storedNarBytes: list[0]!.storedNarBytes,
        samples: list.map((s) => ({ ...s, seconds: round(s.seconds, 3) })),
      };
    };
    const summary = Object.fromEntries(contenders.map((c) => [c.id, summarize(c)])) as Record<ContenderId, ContenderSummary>;

    const larderMedian = summary['larder-push'].medianSeconds;
    const ratios = {
      nixHttpOverLarder: round(summary['nix-copy-http'].medianSeconds / larderMedian),
      nixFileOverLarder: round(summary['nix-copy-file'].medianSeconds / larderMedian),
      nixHttpOverLarderLevel1: round(summary['nix-copy-http'].medianSeconds / summary['larder-push-level-1'].medianSeconds),
      nixFileOverLarderLevel1: round(summary['nix-copy-file'].medianSeconds / summary['larder-push-level-1'].medianSeconds),
      /** The floor: what the goals' ratios would be if the server cost nothing. */
      nixHttpOverLarderIntoSink: round(summary['nix-copy-http'].medianSeconds / summary['larder-push-sink'].medianSeconds),
      nixFileOverLarderIntoSink: round(summary['nix-copy-file'].medianSeconds / summary['larder-push-sink'].medianSeconds),
    };
    const goals = {
      'larder push at least 3x faster than nix copy over HTTP': { ratio: ratios.nixHttpOverLarder, target: 3, met: ratios.nixHttpOverLarder >= 3 },
      'larder push no slower than nix copy to a local directory': { ratio: ratios.nixFileOverLarder, target: 1, met: ratios.nixFileOverLarder >= 1 },
    };

    const result = {
      setup: {
        repetitions,
        order: 'interleaved: larder-push, larder-push-level-1, nix-copy-http, nix-copy-file, larder-push-sink, then again',
        sink: 'larder-push-sink pushes into a bare node:http server that reads each upload and drops it (its "server CPU" is that server\'s); stored = NAR bytes it received',
        compression: 'zstd (larder push: its default level 3, and level 1 as a separate contender; nix: its default level, 3)',
        larderPushJobs: 'default (--jobs not given)',
        serverWorkers: 1,
        freshDestinationEachRun: true,
        rssMethod: method,
        pageCache: 'warm (the closure was just built)',
        quietWait: `before each run, up to ${QUIET_WAIT_SECONDS} s waiting for other processes to leave the CPUs idle; otherCpuSeconds says how busy they were during it`,
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg().map((l) => round(l)),
      },
      closure: {
        paths: built.paths.length,
        narBytes: built.narBytes,
        narMiB: round(built.narBytes / MiB, 1),
        payload: built.mix,
        buildSeconds: round(built.buildSeconds, 1),
        nonce: built.nonce,
      },
      contenders: summary,
      ratios,
      goals,
      server: {
        rssKiBBefore: serverRssBefore,
        rssKiBAfter: serverRssAfter,
        peakRssKiB: serverPeak,
        peakResetPerRun: peakResettable,
      },
      totalSeconds: 0,
    };

    const rows = contenders.map((c) => {
      const s = summary[c.id];
      const ratio = round(s.medianSeconds / larderMedian);
      return [
        c.label,
        s.medianSeconds.toFixed(2),
        s.samplesSeconds.map((v) => v.toFixed(2)).join(' / '),
        c.id === 'larder-push' ? '1.00' : ratio.toFixed(2),
        String(mib(s.clientPeakRssKiB)),
        s.serverPeakRssKiB === null ? '-' : String(mib(s.serverPeakRssKiB)),
        s.medianClientCpuSeconds === null ? '?' : s.medianClientCpuSeconds.toFixed(1),
        s.medianServerCpuSeconds === null ? '-' : s.medianServerCpuSeconds.toFixed(1),
        String(round(s.storedNarBytes / MiB, 1)),
      ];
    });
    const header = ['contender', 'median s', 'samples s', 'time / larder', 'client RSS MiB', 'server RSS MiB', 'client CPU s', 'server CPU s', 'stored MiB'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: readonly string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
    const table = [
      `push: ${built.paths.length} paths, ${round(built.narBytes / MiB, 1)} MiB of NARs, ${repetitions} repetition(s), interleaved`,
      line(header),
      line(widths.map((w) => '-'.repeat(w))),
      ...rows.map(line),
      `RSS columns: peak over the repetitions; CPU columns: median user+system seconds; load average ${loadAtStart.join(' ')} at start`,
      `other processes used at most ${Math.max(...Object.values(summary).map((s) => s.maxOtherCpuSeconds))} CPU seconds during one sample (0 = a quiet machine)`,
      `larder server RSS: ${mib(serverRssBefore)} MiB before, ${mib(serverRssAfter)} MiB after, peak ${mib(serverPeak)} MiB`,
      `floor: into a server that does nothing, larder push would be ${ratios.nixHttpOverLarderIntoSink.toFixed(2)}x nix copy over HTTP and ${ratios.nixFileOverLarderIntoSink.toFixed(2)} of nix copy to file://`,
      ...Object.entries(goals).map(([goal, g]) => `goal ${g.met ? 'met' : 'NOT met'}: ${goal} (ratio ${g.ratio.toFixed(2)}, target ${g.target})`),
    ].join('\n');
    result.totalSeconds = round((performance.now() - benchStarted) / 1000, 1);
    return { result, table };
  } finally {
    await server?.stop();
    await sinkServer?.stop();
    if (closure) {
      const problem = await deleteClosure(closure, nixEnv());
      if (problem) log(`could not delete the generated store paths (ignored): ${problem}`);
    }
    await rm(workDir, { recursive: true, force: true });
  }
}

export const benchmark: Benchmark = {
  name: 'push',
  description: 'larder push vs nix copy (http into larder, and file://) of one generated closure',
  run: runPush,
};
