// NAR download throughput, larder against nginx serving the same files, in
// one run: pre-compressed zstd NARs (uploaded to larder like `nix copy` does;
// nginx serves the very files larder stored), fetched by wrk over keep-alive
// connections, 1 stream (one big NAR, again and again) and 16 concurrent
// streams (16 NARs). Both run as many worker processes as the machine has
// CPUs; the private cache's read token goes to both (nginx ignores it).
// Goal, reported and not asserted: at least 0.9x nginx's bytes per second.

import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Benchmark, BenchOptions, BenchOutcome } from './lib/benchmark.ts';
import { Comparison, figureTable, roundOrder, withCpu, type FigureSpec } from './lib/compare.ts';
import { waitForQuiet } from './lib/measure.ts';
import { nginxVersion, requireNginx } from './lib/nginx.ts';
import { ACCESS_LOGS, CACHE, startPeers, uploadNars } from './lib/peers.ts';
import { encodeNix32 } from '../src/nix/nix32.ts';
import { prepareNar, type PreparedNar } from './lib/synthetic-paths.ts';
import { requireWrk, runWrk } from './lib/wrk.ts';

const MiB = 1024 * 1024;
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

/** Streams a URL through sha256: the nix32 digest and the status. */
async function hashOf(url: string, headers: Readonly<Record<string, string>>): Promise<{ status: number; fileHash: string }> {
  const res = await fetch(url, { headers });
  const hash = createHash('sha256');
  for await (const chunk of res.body ?? []) hash.update(chunk);
  return { status: res.status, fileHash: encodeNix32(hash.digest()) };
}

async function runNarDownload(options: BenchOptions): Promise<BenchOutcome> {
  const { log, quick } = options;
  requireNginx();
  const wrkVersion = requireWrk();
  const workers = availableParallelism();
  const singleSize = (quick ? 32 : 256) * MiB;
  const multiSize = (quick ? 8 : 64) * MiB;
  const streams = 16;
  const rounds = quick ? 1 : 5;
  const seconds = quick ? 3 : 10;
  const loadAtStart = loadavg().map((l) => round(l));

  const workDir = await mkdtemp(join(tmpdir(), 'larder-bench-nar-'));
  const peers = await startPeers(workDir, workers);
  try {
    log(`larder ${peers.larder.url}, nginx ${peers.nginx.url} (${workers} workers each); preparing 1 NAR of ${singleSize / MiB} MiB and ${streams} of ${multiSize / MiB} MiB…`);
    const single = await prepareNar('bench-nar-single', singleSize, join(workDir, 'single.nar.zst'));
    const multi: PreparedNar[] = [];
    for (let i = 0; i < streams; i++) multi.push(await prepareNar(`bench-nar-${i}`, multiSize, join(workDir, `multi-${i}.nar.zst`)));
    log('uploading them to larder (verified and signed as any upload)…');
    await uploadNars(peers, [single, ...multi]);
    // The prepared files are no longer needed: both servers read larder's copies.
    await Promise.all([single, ...multi].map((n) => ('file' in n.body ? rm(n.body.file) : undefined)));

    log('checking that both serve every NAR whole (sha256 of each download)…');
    for (const nar of [single, ...multi]) {
      for (const [server, base] of [['larder', peers.cacheUrl.larder], ['nginx', peers.cacheUrl.nginx]] as const) {
        const got = await hashOf(`${base}/${nar.url}`, peers.headers);
        if (got.status !== 200 || got.fileHash !== nar.fileHash) throw new Error(`${server} ${nar.url}: status ${got.status}, sha256 ${got.fileHash}`);
      }
    }

    const comparison = new Comparison();
    type Kind = { spec: FigureSpec; paths: string[]; connections: number; threads: number };
    const kinds: Kind[] = [
      {
        spec: comparison.figure({ id: 'download-1', title: `NAR download, 1 stream (${singleSize / MiB} MiB zstd NAR)`, unit: 'MiB/s', better: 'higher', goalRatio: 0.9 }),
        paths: [`/${CACHE}/${single.url}`],
        connections: 1,
        threads: 1,
      },
      {
        spec: comparison.figure({ id: 'download-16', title: `NAR download, ${streams} concurrent streams (${streams} × ${multiSize / MiB} MiB zstd NARs)`, unit: 'MiB/s', better: 'higher', goalRatio: 0.9 }),
        paths: multi.map((n) => `/${CACHE}/${n.url}`),
        connections: streams,
        threads: Math.min(workers, 4),
      },
    ];
    const servers = { larder: peers.larder, nginx: peers.nginx };
    const load = (peer: 'larder' | 'nginx', kind: Kind, duration = seconds) =>
      runWrk({ url: servers[peer].url, paths: kind.paths, headers: peers.headers, connections: kind.connections, threads: kind.threads, seconds: duration, scratchDir: workDir });

    log('warming up (2 s of each load per server, discarded)…');
    for (const peer of ['larder', 'nginx'] as const) for (const kind of kinds) await load(peer, kind, 2);

    for (let r = 1; r <= rounds; r++) {
      const waited = await waitForQuiet(quick ? 3 : 15);
      log(`round ${r}/${rounds}${waited < 0 ? ' (the machine is busy)' : ''}`);
      for (const kind of kinds) {
        for (const peer of roundOrder(r)) {
          const { result, serverCpuSeconds, otherCpuSeconds } = await withCpu(servers[peer].pid, () => load(peer, kind));
          const errors = Object.values(result.socketErrors).reduce((a, b) => a + b, 0);
          if (result.non2xx > 0 || errors > 0 || result.requests === 0) {
            throw new Error(`${peer} ${kind.spec.id}: ${result.requests} requests, ${result.non2xx} not 2xx, socket errors ${JSON.stringify(result.socketErrors)}`);
          }
          const value = Math.round(result.bytesPerSecond / MiB);
          comparison.add(kind.spec, peer, {
            round: r,
            value,
            serverCpuSeconds,
            otherCpuSeconds,
            completedDownloads: result.requests,
            bytes: result.bytes,
            seconds: round(result.seconds, 3),
            wrkCpuSeconds: result.clientCpuSeconds,
            serverCpuSecondsPerGiB: round(serverCpuSeconds / (result.bytes / 2 ** 30), 3),
          });
          log(`  ${kind.spec.id.padEnd(12)} ${peer.padEnd(6)} ${String(value).padStart(6)} MiB/s  (${result.requests} downloads, server ${serverCpuSeconds} CPU s, wrk ${result.clientCpuSeconds ?? '?'} CPU s, other processes ${otherCpuSeconds} CPU s)`);
        }
      }
    }
    const figures = comparison.results();
    const maxOther = Math.max(...figures.flatMap((f) => [...f.details.larder, ...f.details.nginx].map((s) => s.otherCpuSeconds)));
    const result = {
      setup: {
        rounds,
        order: 'each round runs both figures on both servers, larder first in odd rounds and nginx first in even ones; 2 s of each load per server first as warm-up (discarded)',
        workers: { larder: `--workers ${workers}`, nginx: `worker_processes ${workers}` },
        nars: {
          compression: 'zstd (level 1, of incompressible bytes: about the NAR size)',
          single: { narBytes: single.narSize, fileBytes: single.fileSize },
          multi: { count: streams, narBytes: multi[0]!.narSize, fileBytes: multi[0]!.fileSize },
          files: "larder's filesystem store (served by both); warm page cache",
        },
        auth: 'private cache: Authorization: Basic with a read token on every request; larder checks it, nginx ignores it',
        load: { tool: `wrk ${wrkVersion}`, seconds, connections: { 'download-1': 1, 'download-16': streams }, threads: { 'download-1': 1, 'download-16': Math.min(workers, 4) }, statistic: 'bytes read / duration of each run (partial downloads at the end included); figure: median over rounds' },
        accessLogs: ACCESS_LOGS,
        accessLogBytes: await peers.logBytes(),
        nginx: { version: nginxVersion(), config: peers.nginx.config, errorLog: (await peers.nginx.errors()) || null },
        clientAndServerShareTheMachine: true,
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg().map((l) => round(l)),
        maxOtherCpuSecondsInOneSample: maxOther,
      },
      figures,
    };
    const table = [
      `NAR download: zstd NARs in a private cache, ${workers} workers each, ${rounds} round(s) of ${seconds} s, interleaved`,
      figureTable(figures),
      `other processes used at most ${maxOther} CPU s during one sample (0 = a quiet machine); load average ${loadAtStart.join(' ')} at start`,
    ].join('\n');
    return { result, table };
  } finally {
    await peers.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

export const benchmark: Benchmark = {
  name: 'nar-download',
  description: 'NAR download throughput, 1 and 16 concurrent streams of zstd NARs, larder vs nginx on the same files',
  run: runNarDownload,
};
