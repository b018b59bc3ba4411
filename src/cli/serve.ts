// `larder serve`: the binary cache server on embedded defaults (SQLite and a
// directory), in one process or several sharing one port (--workers). Each
// serving process counts and logs what it serves (src/observability/); with
// several, the primary sums their metrics for /metrics.

import cluster from 'node:cluster';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { netrcLine, nixConfLines } from '../client/nix-config.ts';
import type { ServerConfig } from '../config/config.ts';
import { trustedPublicKeys } from '../services/cache-admin.ts';
import { GcScheduler } from '../services/gc.ts';
import { initializeIfEmpty, type FirstStart, type Larder } from '../services/larder.ts';
import { Observability, serveWorkersMetrics } from '../observability/observability.ts';
import { createLarderServer } from '../server/server.ts';
import { openLarder, serverConfig } from './server-config.ts';
import { UserError } from './user-error.ts';

interface ServeFlags {
  listen?: string;
  data?: string;
  config?: string;
  workers?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the binary cache server (embedded defaults: ./larder-data/)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8080)')
    .option('--data <dir>', 'data directory (default ./larder-data)')
    .option('--config <file>', 'larder.toml settings file')
    .option('--workers <n>', 'processes serving the same port (default 1)')
    .action(async (flags: ServeFlags) => {
      tuneHeapForStreaming();
      const config = await serverConfig(flags.config, { listen: flags.listen, 'data-dir': flags.data, workers: flags.workers });
      if (cluster.isWorker) await runWorker(config);
      else await runPrimary(config);
    });
}


/**
 * A server streams gigabytes through short-lived buffers. V8's default young
 * generation (up to 3 × 16 MiB) then holds tens of MiB of garbage between
 * scavenges: a 2 MiB semi-space keeps a busy server's memory flat for a few
 * per cent of CPU. And buffers outside the heap pile up to ~64 MiB per thread
 * before V8 collects them: with `gc` exposed, intake paces collections itself
 * (services/garbage-pacer.ts). Both flags work only at start-up, so the process
 * replaces itself (same pid) once with those the user has not set already.
 */
const START_FLAGS: ReadonlyArray<{ readonly name: string; readonly flag: string }> = [
  { name: '--max-semi-space-size', flag: '--max-semi-space-size=2' },
  { name: '--expose-gc', flag: '--expose-gc' },
];

function tuneHeapForStreaming(): void {
  if (cluster.isWorker || typeof process.execve !== 'function') return;
  // V8 takes its flags with - or _ between words (--expose_gc): compared with dashes.
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].map((arg) => arg.replaceAll('_', '-'));
  const missing = START_FLAGS.filter(({ name }) => !given.some((arg) => arg.includes(name)));
  if (missing.length === 0) return;
  process.execve(process.execPath, [process.execPath, ...missing.map((m) => m.flag), ...process.execArgv, ...process.argv.slice(1)], process.env);
}

/** Access times are written this often (and at shutdown). */
const ACCESS_FLUSH_MS = 10_000;

async function listen(larder: Larder, config: ServerConfig, observability: Observability): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createLarderServer(larder, { metrics: observability.metricsHandler(larder.tokens), onInternalError: observability.internalError });
  observability.observe(server);
  larder.accesses.start(ACCESS_FLUSH_MS);
  // Every serving process runs the schedule; the index's lease lets one replica at a time collect.
  const gc = config.gc.intervalMs === null ? undefined : new GcScheduler(larder, config.gc.intervalMs, (line) => process.stderr.write(`larder: ${line}\n`));
  gc?.start();
  server.listen(config.listen.port, config.listen.host);
  try {
    await once(server, 'listening');
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new UserError(`cannot listen on ${config.listen.host}:${config.listen.port}: ${e.code ?? e.message}`);
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  return {
    port,
    close: async () => {
      await gc?.stop();
      server.close();
      server.closeIdleConnections();
      await once(server, 'close');
    },
  };
}

async function runWorker(config: ServerConfig): Promise<void> {
  const observability = new Observability(config, 'worker');
  const larder = await openLarder(config, observability.telemetry);
  const { close } = await listen(larder, config, observability);
  process.on('SIGTERM', () => void close().then(() => larder.close()).then(() => process.exit(0)));
}

async function runPrimary(config: ServerConfig): Promise<void> {
  // Alone, this process serves and counts; with workers, they do, and it sums their metrics.
  const observability = config.workers === 1 ? new Observability(config, 'alone') : undefined;
  const larder = await openLarder(config, observability?.telemetry);
  const firstStart = await initializeIfEmpty(larder, join(config.dataDir, 'admin-token'));
  let port: number;
  let stop: () => Promise<void>;
  if (observability) {
    observability.countCacheContents(larder.index);
    const served = await listen(larder, config, observability);
    port = served.port;
    stop = async () => {
      await served.close();
      await larder.close();
    };
  } else {
    serveWorkersMetrics(larder.index);
    port = await forkWorkers(config);
    stop = async () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
      await larder.close();
    };
  }
  process.stdout.write(await banner(larder, config, port, firstStart));
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      void stop().then(() => process.exit(0));
    });
  }
}

/** Starts the workers; resolves with the port once all of them listen. */
async function forkWorkers(config: ServerConfig): Promise<number> {
  // Workers accept connections themselves rather than through the primary.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  let shuttingDown = false;
  process.once('SIGTERM', () => (shuttingDown = true)).once('SIGINT', () => (shuttingDown = true));
  const listening: Promise<number>[] = [];
  for (let i = 0; i < config.workers; i++) {
    const worker = cluster.fork();
    listening.push(
      new Promise((resolve, reject) => {
        worker.once('listening', (address) => resolve(address.port));
        worker.once('exit', (code) => reject(new UserError(`worker ${i + 1} exited with code ${code} before listening`)));
      }),
    );
  }
  const ports = await Promise.all(listening);
  cluster.on('exit', (worker, code, signal) => {
    if (shuttingDown) return;
    process.stderr.write(`larder: worker ${worker.process.pid} died (${signal ?? code}); starting another\n`);
    cluster.fork();
  });
  return ports[0]!;
}

function baseUrl(config: ServerConfig, port: number): string {
  if (config.publicUrl) return config.publicUrl;
  const { host } = config.listen;
  const shown = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${shown}:${port}`;
}

async function banner(larder: Larder, config: ServerConfig, port: number, firstStart: FirstStart | undefined): Promise<string> {
  const url = baseUrl(config, port);
  const dataDir = relative(process.cwd(), config.dataDir) || '.';
  const lines = [`larder serving ${url} (${config.workers} process${config.workers > 1 ? 'es' : ''}, data in ${dataDir})`, ''];
  for (const cache of await larder.index.listCaches()) {
    lines.push(`cache ${cache.name} (${cache.public ? 'public' : 'private'}): ${url}/${cache.name}`);
    for (const key of await trustedPublicKeys(larder, cache.name)) lines.push(`  public key: ${key}`);
  }
  lines.push('', `server-admin token: in ${join(dataDir, 'admin-token')} (keep it secret)`);
  if (firstStart) {
    const cacheUrl = `${url}/${firstStart.cache}`;
    const netrcFile = '/etc/nix/netrc';
    const access = { url: cacheUrl, publicKeys: await trustedPublicKeys(larder, firstStart.cache), token: firstStart.writeToken, netrcFile };
    lines.push(
      '',
      'To substitute from and push to this cache, add to nix.conf (/etc/nix/nix.conf):',
      ...nixConfLines(access).map((l) => `  ${l}`),
      `and to ${netrcFile} (mode 0600; this write token is shown only once):`,
      `  ${netrcLine(cacheUrl, firstStart.writeToken)}`,
      'Then push with:',
      `  nix copy --to '${cacheUrl}?compression=zstd' ./result`,
    );
  }
  lines.push('', 'larder is ready; stop it with Ctrl-C.');
  return lines.join('\n') + '\n';
}
