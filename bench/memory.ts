// Server memory under heavy transfers: the peak resident set of one larder
// process (`--workers 1`) while it serves 16 concurrent downloads of a 1 GiB
// NAR and receives 4 concurrent 1 GiB NAR uploads (zstd of incompressible
// bytes, so every byte is decompressed, hashed and parsed on the way in),
// with curl as the client (as Nix is). Also, for scale, the same 16
// downloads alone from larder and from nginx (`worker_processes 1`) over the
// same file. Peak: the kernel's VmHWM after resetting it (clear_refs), and
// VmRSS sampled every 50 ms. Goal, reported and not asserted: larder's peak
// under 256 MiB.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Benchmark, BenchOptions, BenchOutcome } from './lib/benchmark.ts';
import { processTree, resetPeak, statusField } from './lib/measure.ts';
import { nginxVersion, NginxServer, requireNginx } from './lib/nginx.ts';
import { ACCESS_LOGS, CACHE } from './lib/peers.ts';
import { LarderServer } from './lib/larder-server.ts';
import { narInfoOf, prepareNar, put, uploadPath, type PreparedNar } from './lib/synthetic-paths.ts';

const MiB = 1024 * 1024;
const GOAL_MIB = 256;
const round = (n: number, digits = 1) => Number(n.toFixed(digits));
const mib = (kib: number) => round(kib / 1024);

/** Runs curl; resolves with what `-w` printed, rejects on a non-zero exit. */
function curl(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['--silent', '--show-error', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`curl ${args.join(' ')} exited with ${code}: ${err.trim()}`))));
  });
}

interface Peak {
  readonly peakKiB: number;
  readonly sampledPeakKiB: number;
  readonly baselineKiB: number;
  readonly hwmReset: boolean;
  readonly seconds: number;
}

/** The peak RSS of a process tree while `work` runs: VmHWM after a reset where allowed, and the largest sampled VmRSS sum. */
async function peakDuring(pid: number, work: () => Promise<unknown>): Promise<Peak> {
  const pids = processTree(pid);
  const baselineKiB = pids.reduce((sum, p) => sum + statusField(p, 'VmRSS'), 0);
  const hwmReset = pids.map(resetPeak).every(Boolean);
  let sampledPeakKiB = baselineKiB;
  const sampler = setInterval(() => {
    let sum = 0;
    for (const p of processTree(pid)) {
      try {
        sum += statusField(p, 'VmRSS');
      } catch {
        // gone
      }
    }
    sampledPeakKiB = Math.max(sampledPeakKiB, sum);
  }, 50);
  const started = performance.now();
  try {
    await work();
    const seconds = (performance.now() - started) / 1000;
    // Per-process peaks, summed: an upper bound for a tree (they need not peak together).
    const hwm = pids.reduce((sum, p) => sum + statusField(p, 'VmHWM'), 0);
    return { peakKiB: hwmReset ? Math.max(hwm, sampledPeakKiB) : sampledPeakKiB, sampledPeakKiB, baselineKiB, hwmReset, seconds };
  } finally {
    clearInterval(sampler);
  }
}

async function downloads(url: string, headers: readonly string[], count: number, size: number): Promise<void> {
  const results = await Promise.all(Array.from({ length: count }, () => curl([...headers, '--output', '/dev/null', '--write-out', '%{http_code} %{size_download}', url])));
  for (const line of results) {
    if (line !== `200 ${size}`) throw new Error(`download of ${url}: '${line}', expected '200 ${size}'`);
  }
}

async function runMemory(options: BenchOptions): Promise<BenchOutcome> {
  const { log, quick } = options;
  requireNginx();
  const size = (quick ? 64 : 1024) * MiB;
  const downloadCount = 16;
  const uploadCount = 4;
  const loadAtStart = loadavg().map((l) => round(l, 2));

  const workDir = await mkdtemp(join(tmpdir(), 'larder-bench-memory-'));
  const dataDir = join(workDir, 'larder-data');
  const larder = await LarderServer.start(dataDir, process.env, { workers: 1, logFile: join(workDir, 'larder.log') });
  let nginx: NginxServer | undefined;
  const larderRssAtStartKiB = statusField(larder.pid, 'VmRSS');
  try {
    await larder.api('POST', 'caches', { name: CACHE, public: false });
    const writeToken = await larder.token(CACHE, 'write');
    const readToken = await larder.token(CACHE, 'read');
    const cacheUrl = `${larder.url}/${CACHE}`;
    nginx = await NginxServer.start({ root: join(dataDir, 'store'), workDir: join(workDir, 'nginx'), workers: 1, accessLog: true });

    log(`preparing ${1 + uploadCount} NARs of ${size / MiB} MiB (zstd of incompressible bytes)…`);
    const served = await prepareNar('bench-memory-served', size, join(workDir, 'served.nar.zst'));
    const uploads: PreparedNar[] = [];
    for (let i = 0; i < uploadCount; i++) uploads.push(await prepareNar(`bench-memory-upload-${i}`, size, join(workDir, `upload-${i}.nar.zst`)));
    log('uploading the one to download…');
    await uploadPath(cacheUrl, writeToken, served);
    await rm(join(workDir, 'served.nar.zst'));

    const basic = ['--header', `Authorization: Basic ${Buffer.from(`bench:${readToken}`).toString('base64')}`];
    const narPath = `/${CACHE}/${served.url}`;

    log(`${downloadCount} concurrent downloads from larder…`);
    const larderDownloads = await peakDuring(larder.pid, () => downloads(`${larder.url}${narPath}`, basic, downloadCount, served.fileSize));
    log(`  peak ${mib(larderDownloads.peakKiB)} MiB in ${round(larderDownloads.seconds)} s`);
    log(`${downloadCount} concurrent downloads from nginx…`);
    const nginxDownloads = await peakDuring(nginx.pid, () => downloads(`${nginx!.url}${narPath}`, basic, downloadCount, served.fileSize));
    log(`  peak ${mib(nginxDownloads.peakKiB)} MiB in ${round(nginxDownloads.seconds)} s`);

    log(`${downloadCount} concurrent downloads and ${uploadCount} concurrent uploads, larder…`);
    const bearer = ['--header', `Authorization: Bearer ${writeToken}`];
    const mixed = await peakDuring(larder.pid, () =>
      Promise.all([
        downloads(`${larder.url}${narPath}`, basic, downloadCount, served.fileSize),
        ...uploads.map(async (nar) => {
          const file = (nar.body as { file: string }).file;
          const status = await curl([...bearer, '--header', 'Content-Type: application/x-nix-nar', '--upload-file', file, '--output', '/dev/null', '--write-out', '%{http_code}', `${cacheUrl}/${nar.url}`]);
          if (status !== '201') throw new Error(`upload of ${nar.url}: status ${status}, expected 201`);
          await put(`${cacheUrl}/${nar.storePath.hashPart}.narinfo`, writeToken, narInfoOf(nar), 'text/x-nix-narinfo');
        }),
      ]),
    );
    log(`  peak ${mib(mixed.peakKiB)} MiB in ${round(mixed.seconds)} s`);
    const missing = await larder.missing(CACHE, uploads.map((n) => `/nix/store/${n.storePath.hashPart}-${n.storePath.name}`));
    if (missing.length > 0) throw new Error(`after the uploads the cache lacks ${missing.join(', ')}`);

    const figure = (label: string, m: Peak, bytes: number) => ({
      label,
      peakRssMiB: mib(m.peakKiB),
      sampledPeakRssMiB: mib(m.sampledPeakKiB),
      baselineRssMiB: mib(m.baselineKiB),
      peakFromVmHWM: m.hwmReset,
      seconds: round(m.seconds, 2),
      mibPerSecond: Math.round(bytes / MiB / m.seconds),
    });
    const downloadBytes = downloadCount * served.fileSize;
    const uploadBytes = uploads.reduce((sum, n) => sum + n.fileSize, 0);
    const larderDl = figure(`larder, ${downloadCount} downloads`, larderDownloads, downloadBytes);
    const nginxDl = figure(`nginx, ${downloadCount} downloads`, nginxDownloads, downloadBytes);
    const larderMixed = figure(`larder, ${downloadCount} downloads + ${uploadCount} uploads`, mixed, downloadBytes + uploadBytes);
    const met = larderMixed.peakRssMiB < GOAL_MIB;
    const result = {
      setup: {
        larder: '--workers 1 (one process); peak RSS of that process',
        nginx: `worker_processes 1; peak RSS summed over master and worker (${nginxVersion()})`,
        sizes: { narFileBytes: served.fileSize, narBytes: served.narSize, downloads: downloadCount, uploads: uploadCount, uploadFileBytes: uploads[0]!.fileSize },
        content: 'zstd level 1 of an AES-CTR keystream (incompressible): larder decompresses, hashes and parses every uploaded byte',
        client: 'curl (as Nix), one process per transfer, on the same machine; downloads to /dev/null; each upload a PUT of the .nar.zst then of its narinfo',
        peak: 'VmHWM from /proc/<pid>/status after resetting it with clear_refs (when allowed), and the largest VmRSS sampled every 50 ms; the larger of the two',
        accessLogs: ACCESS_LOGS,
        auth: 'private cache; downloads with a read token (Basic, as from netrc; nginx ignores it), uploads with a write token (Bearer)',
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg().map((l) => round(l, 2)),
        cpus: availableParallelism(),
      },
      figures: {
        downloads: { larder: larderDl, nginx: nginxDl, ratio: round(larderDl.peakRssMiB / nginxDl.peakRssMiB, 2) },
        downloadsAndUploads: { larder: larderMixed },
        larderIdleRssMiB: { atStart: mib(larderRssAtStartKiB), afterUploadingTheServedNar: larderDl.baselineRssMiB },
      },
      goal: { text: `larder's peak RSS under ${GOAL_MIB} MiB during ${downloadCount} downloads + ${uploadCount} uploads of ${size / MiB} MiB`, target: GOAL_MIB, peakRssMiB: larderMixed.peakRssMiB, met },
    };
    const table = [
      `memory: ${size / MiB} MiB NARs, one server process each`,
      '| case | peak RSS | baseline RSS | transfer rate |',
      '|---|---|---|---|',
      ...[nginxDl, larderDl, larderMixed].map((f) => `| ${f.label} | ${f.peakRssMiB} MiB | ${f.baselineRssMiB} MiB | ${f.mibPerSecond} MiB/s |`),
      `larder's RSS when idle: ${mib(larderRssAtStartKiB)} MiB at start, ${larderDl.baselineRssMiB} MiB after receiving one ${size / MiB} MiB upload`,
      `goal ${met ? 'met' : 'NOT met'}: ${result.goal.text} (peak ${larderMixed.peakRssMiB} MiB); downloads alone: larder/nginx peak RSS ${result.figures.downloads.ratio}`,
    ].join('\n');
    return { result, table };
  } finally {
    await nginx?.stop();
    await larder.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

export const benchmark: Benchmark = {
  name: 'memory',
  description: 'peak server RSS during 16 concurrent 1 GiB downloads plus 4 concurrent 1 GiB uploads (and the downloads alone vs nginx)',
  run: runMemory,
};
