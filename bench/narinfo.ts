// narinfo serving, larder against nginx serving the same cache directory as
// static files (the method of Mic92/cache-shootout), in one run:
// - latency: wrk with one thread and one keep-alive connection, each request
//   sent when the last answer is in (sequential), median per-request latency;
// - throughput: wrk with 64 connections, requests per second;
// each for hits (narinfos in the cache) and misses (404s: absent hash parts).
// The cache is private: every request carries a read token as Basic auth (as
// Nix sends it from netrc), which larder checks and nginx ignores. Both run
// as many worker processes as the machine has CPUs. Goals, reported and not
// asserted: latency at most 1.1x nginx's, throughput at least 0.8x. A bare
// node:http server answering the same bytes from memory (node-http-floor.ts)
// runs each load too: the most any server on node:http can do here.

import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Benchmark, BenchOptions, BenchOutcome } from './lib/benchmark.ts';
import { Comparison, figureTable, roundOrder, withCpu, type FigureSpec } from './lib/compare.ts';
import { median, waitForQuiet } from './lib/measure.ts';
import { nginxVersion, requireNginx } from './lib/nginx.ts';
import { absentHashParts, ACCESS_LOGS, CACHE, fetchBody, fillSmallPaths, startPeers } from './lib/peers.ts';
import { NodeHttpFloor } from './lib/node-http-floor.ts';
import { requireWrk, runWrk, type WrkResult } from './lib/wrk.ts';

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

async function runNarinfo(options: BenchOptions): Promise<BenchOutcome> {
  const { log, quick } = options;
  requireNginx();
  const wrkVersion = requireWrk();
  const workers = availableParallelism();
  const paths = quick ? 200 : 1000;
  const rounds = quick ? 1 : 5;
  const latencySeconds = quick ? 2 : 5;
  const loadSeconds = quick ? 3 : 10;
  const connections = 64;
  const loadThreads = Math.min(workers, 4);
  const loadAtStart = loadavg().map((l) => round(l));

  const workDir = await mkdtemp(join(tmpdir(), 'larder-bench-narinfo-'));
  const peers = await startPeers(workDir, workers);
  let floor: NodeHttpFloor | undefined;
  try {
    log(`larder ${peers.larder.url} (${workers} workers), nginx ${peers.nginx.url} (${workers} workers); uploading ${paths} paths…`);
    const filled = await fillSmallPaths(peers, paths, { minBytes: 200, maxBytes: 4000, concurrency: 8 });
    const hits = filled.map((p) => `/${CACHE}/${p.hashPart}.narinfo`);
    const misses = absentHashParts(paths).map((h) => `/${CACHE}/${h}.narinfo`);

    // Both answer the same bytes for a hit and 404 for a miss; larder refuses a request without the token.
    let narinfoBytes = 0;
    const bodies = new Map<string, string>();
    for (const path of hits) {
      const [fromLarder, fromNginx] = await Promise.all([
        fetchBody(`${peers.larder.url}${path}`, peers.headers),
        fetchBody(`${peers.nginx.url}${path}`, peers.headers),
      ]);
      if (fromLarder.status !== 200 || fromNginx.status !== 200 || !fromLarder.body.equals(fromNginx.body)) {
        throw new Error(`${path}: larder answered ${fromLarder.status}, nginx ${fromNginx.status}, bodies ${fromLarder.body.equals(fromNginx.body) ? 'equal' : 'differ'}`);
      }
      narinfoBytes += fromLarder.body.length;
      bodies.set(path, fromLarder.body.toString('utf8'));
    }
    floor = await NodeHttpFloor.start(workDir, bodies, workers);
    for (const [server, url] of [['larder', peers.larder.url], ['nginx', peers.nginx.url]] as const) {
      const { status } = await fetchBody(`${url}${misses[0]}`, peers.headers);
      if (status !== 404) throw new Error(`${server} answered ${status} for an absent narinfo, expected 404`);
    }
    const anonymous = await fetchBody(`${peers.larder.url}${hits[0]}`, {});
    if (anonymous.status !== 401) throw new Error(`larder answered ${anonymous.status} without a token, expected 401: the cache should be private`);

    const comparison = new Comparison();
    type Kind = { spec: FigureSpec; paths: string[]; hit: boolean; connections: number; threads: number; seconds: number; value: (r: WrkResult) => number };
    const kinds: Kind[] = [
      {
        spec: comparison.figure({ id: 'latency-hit', title: 'narinfo latency, hits, 1 keep-alive connection (median)', unit: 'µs', better: 'lower', goalRatio: 1.1 }),
        paths: hits, hit: true, connections: 1, threads: 1, seconds: latencySeconds, value: (r) => r.latencyUs.p50,
      },
      {
        spec: comparison.figure({ id: 'latency-miss', title: 'narinfo latency, 404 misses, 1 keep-alive connection (median)', unit: 'µs', better: 'lower', goalRatio: 1.1 }),
        paths: misses, hit: false, connections: 1, threads: 1, seconds: latencySeconds, value: (r) => r.latencyUs.p50,
      },
      {
        spec: comparison.figure({ id: 'throughput-hit', title: `narinfo throughput, hits, ${connections} connections`, unit: 'req/s', better: 'higher', goalRatio: 0.8 }),
        paths: hits, hit: true, connections, threads: loadThreads, seconds: loadSeconds, value: (r) => Math.round(r.requestsPerSecond),
      },
      {
        spec: comparison.figure({ id: 'throughput-miss', title: `narinfo throughput, 404 misses, ${connections} connections`, unit: 'req/s', better: 'higher', goalRatio: 0.8 }),
        paths: misses, hit: false, connections, threads: loadThreads, seconds: loadSeconds, value: (r) => Math.round(r.requestsPerSecond),
      },
    ];
    const servers = { larder: peers.larder, nginx: peers.nginx, floor };
    const load = (peer: 'larder' | 'nginx' | 'floor', kind: Kind, seconds = kind.seconds) =>
      runWrk({ url: servers[peer].url, paths: kind.paths, headers: peers.headers, connections: kind.connections, threads: kind.threads, seconds, scratchDir: workDir });

    log('warming up both servers (2 s of each load, discarded)…');
    for (const peer of ['larder', 'nginx', 'floor'] as const) for (const kind of kinds) await load(peer, kind, 2);
    const floorSamples = new Map<string, Array<{ round: number; value: number; serverCpuSeconds: number; otherCpuSeconds: number; serverCpuMicrosecondsPerRequest: number }>>();

    for (let r = 1; r <= rounds; r++) {
      const waited = await waitForQuiet(quick ? 3 : 15);
      log(`round ${r}/${rounds}${waited < 0 ? ' (the machine is busy)' : ''}`);
      for (const kind of kinds) {
        for (const peer of roundOrder(r)) {
          const { result, serverCpuSeconds, otherCpuSeconds } = await withCpu(servers[peer].pid, () => load(peer, kind));
          const expectedNon2xx = kind.hit ? 0 : result.requests;
          const errors = Object.values(result.socketErrors).reduce((a, b) => a + b, 0);
          if (Math.abs(result.non2xx - expectedNon2xx) > kind.connections || errors > 0) {
            throw new Error(`${peer} ${kind.spec.id}: ${result.requests} requests, ${result.non2xx} not 2xx (expected ${kind.hit ? 'none' : 'all'}), socket errors ${JSON.stringify(result.socketErrors)}`);
          }
          const value = kind.value(result);
          comparison.add(kind.spec, peer, {
            round: r,
            value,
            serverCpuSeconds,
            otherCpuSeconds,
            requests: result.requests,
            seconds: round(result.seconds, 3),
            requestsPerSecond: Math.round(result.requestsPerSecond),
            latencyUs: result.latencyUs,
            wrkCpuSeconds: result.clientCpuSeconds,
            serverCpuMicrosecondsPerRequest: Math.round((serverCpuSeconds * 1e6) / result.requests),
          });
          log(`  ${kind.spec.id.padEnd(16)} ${peer.padEnd(6)} ${String(value).padStart(8)} ${kind.spec.unit}  (${result.requests} requests, server ${serverCpuSeconds} CPU s, other processes ${otherCpuSeconds} CPU s)`);
        }
        // The floor goes after the pair: a reference, not a contender.
        const { result, serverCpuSeconds, otherCpuSeconds } = await withCpu(floor.pid, () => load('floor', kind));
        const value = kind.value(result);
        const samples = floorSamples.get(kind.spec.id) ?? [];
        samples.push({ round: r, value, serverCpuSeconds, otherCpuSeconds, serverCpuMicrosecondsPerRequest: Math.round((serverCpuSeconds * 1e6) / result.requests) });
        floorSamples.set(kind.spec.id, samples);
        log(`  ${kind.spec.id.padEnd(16)} ${'floor'.padEnd(6)} ${String(value).padStart(8)} ${kind.spec.unit}  (bare node:http; ${result.requests} requests, server ${serverCpuSeconds} CPU s)`);
      }
    }
    const nginxErrors = await peers.nginx.errors();
    const figures = comparison.results();
    const maxOther = Math.max(...figures.flatMap((f) => [...f.details.larder, ...f.details.nginx].map((s) => s.otherCpuSeconds)));
    const nodeHttpFloor = figures.map((f) => {
      const samples = floorSamples.get(f.id)!;
      const floorMedian = Number(median(samples.map((s) => s.value)).toPrecision(4));
      return {
        id: f.id,
        median: floorMedian,
        overNginx: round(floorMedian / f.nginx.median, 3),
        larderOverFloor: round(f.larder.median / floorMedian, 3),
        samples,
      };
    });
    const result = {
      setup: {
        rounds,
        order: 'each round runs every figure on both servers, larder first in odd rounds and nginx first in even ones; 2 s of each load per server first as warm-up (discarded)',
        workers: { larder: `--workers ${workers}`, nginx: `worker_processes ${workers}` },
        cache: { private: true, paths, meanNarinfoBytes: Math.round(narinfoBytes / paths), references: '1-4 per path', narinfoSource: 'larder: its index (and in-process LRU); nginx: the .narinfo files larder wrote to its filesystem store' },
        auth: 'every request sends Authorization: Basic (a read token as the password, as Nix sends it from netrc); larder checks it, nginx ignores it',
        latency: { tool: `wrk ${wrkVersion}`, threads: 1, connections: 1, seconds: latencySeconds, statistic: "median of wrk's per-request latencies in each run; figure: median over rounds" },
        throughput: { tool: `wrk ${wrkVersion}`, threads: loadThreads, connections, seconds: loadSeconds, statistic: 'requests per second of each run; figure: median over rounds' },
        paths: 'each connection cycles through the hit (or miss) list, threads starting at different places',
        accessLogs: ACCESS_LOGS,
        accessLogBytes: await peers.logBytes(),
        nginx: { version: nginxVersion(), config: peers.nginx.config, errorLog: nginxErrors || null },
        clientAndServerShareTheMachine: true,
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg().map((l) => round(l)),
        maxOtherCpuSecondsInOneSample: maxOther,
        nodeHttpFloor: `a bare node:http server (node ${process.version}, ${workers} cluster workers) answering the same bytes from a Map: no auth, no lookup, no logs, no metrics; run after larder and nginx in every round`,
      },
      figures,
      nodeHttpFloor,
    };
    const table = [
      `narinfo: ${paths} paths in a private cache, ${workers} workers each, ${rounds} round(s), interleaved`,
      figureTable(figures),
      '',
      'bare node:http, the floor under any server written on it (same loads, no auth, logs, lookups or metrics):',
      '',
      '| figure | node:http median | node:http/nginx | larder/node:http |',
      '|---|---|---|---|',
      ...nodeHttpFloor.map((f) => {
        const figure = figures.find((g) => g.id === f.id)!;
        return `| ${figure.title} | ${f.median} ${figure.unit} | ${f.overNginx.toFixed(2)} | ${f.larderOverFloor.toFixed(2)} |`;
      }),
      '',
      `other processes used at most ${maxOther} CPU s during one sample (0 = a quiet machine); load average ${loadAtStart.join(' ')} at start`,
    ].join('\n');
    return { result, table };
  } finally {
    await floor?.stop();
    await peers.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

export const benchmark: Benchmark = {
  name: 'narinfo',
  description: 'narinfo latency (1 connection) and throughput (64 connections), hits and misses, larder vs nginx on the same files',
  run: runNarinfo,
};
