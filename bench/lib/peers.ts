// What the server benchmarks share: a larder server with a private cache
// holding synthetic paths, nginx serving that cache's files straight from
// larder's filesystem store (the standard binary-cache layout, so the same
// URLs name the same files), and the request headers both get.

import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import type { StorePath } from '../../src/nix/store-path.ts';
import { LarderServer } from './larder-server.ts';
import { NginxServer } from './nginx.ts';
import { prepareNar, uploadPath, type PreparedNar } from './synthetic-paths.ts';

export const CACHE = 'bench';

/**
 * Both servers log every request, as each does by default: nginx its access
 * log (combined format) to a file, larder its JSON request lines on standard
 * output, sent to a file.
 */
export const ACCESS_LOGS = 'on for both: nginx access_log (combined format) to a file; larder its default request log lines (JSON, level info) on stdout, redirected to a file';

export interface Peers {
  readonly larder: LarderServer;
  readonly nginx: NginxServer;
  /** `/<cache>` on each. */
  readonly cacheUrl: { readonly larder: string; readonly nginx: string };
  readonly writeToken: string;
  readonly readToken: string;
  /** What a client sends to both: Nix's Basic auth from a netrc entry (nginx ignores it). */
  readonly headers: Readonly<Record<string, string>>;
  readonly workers: number;
  readonly dataDir: string;
  /** Bytes each access log holds so far (proof that both logged). */
  logBytes(): Promise<{ larder: number; nginx: number }>;
  stop(): Promise<void>;
}

/** Starts larder (`workers` processes, a private cache) and nginx (as many workers) over the same files. */
export async function startPeers(workDir: string, workers: number): Promise<Peers> {
  const dataDir = join(workDir, 'larder-data');
  const larder = await LarderServer.start(dataDir, process.env, { workers, logFile: join(workDir, 'larder.log') });
  let nginx: NginxServer | undefined;
  try {
    await larder.api('POST', 'caches', { name: CACHE, public: false });
    const writeToken = await larder.token(CACHE, 'write');
    const readToken = await larder.token(CACHE, 'read');
    // larder's filesystem store keeps <cache>/… under data/store: nginx serves that directory as is.
    nginx = await NginxServer.start({ root: join(dataDir, 'store'), workDir: join(workDir, 'nginx'), workers, accessLog: true });
    const started = nginx;
    return {
      larder,
      nginx,
      cacheUrl: { larder: `${larder.url}/${CACHE}`, nginx: `${nginx.url}/${CACHE}` },
      writeToken,
      readToken,
      headers: { Authorization: `Basic ${Buffer.from(`bench:${readToken}`).toString('base64')}` },
      workers,
      dataDir,
      logBytes: async () => ({
        larder: (await stat(join(workDir, 'larder.log'))).size,
        nginx: (await stat(join(workDir, 'nginx', 'access.log'))).size,
      }),
      stop: async () => {
        await started.stop();
        await larder.stop();
      },
    };
  } catch (error) {
    await nginx?.stop();
    await larder.stop();
    throw error;
  }
}

/** Hash parts that no cache holds (404s). */
export function absentHashParts(count: number): string[] {
  return Array.from({ length: count }, () => encodeNix32(randomBytes(20)));
}

/**
 * Uploads `count` small paths (NARs of `minBytes`–`maxBytes`), each referring
 * to up to four earlier ones, as a real closure's narinfos do; `concurrency`
 * uploads at a time, a batch's references all in earlier batches.
 */
export async function fillSmallPaths(peers: Peers, count: number, options: { minBytes: number; maxBytes: number; concurrency: number }): Promise<StorePath[]> {
  const uploaded: StorePath[] = [];
  for (let start = 0; start < count; start += options.concurrency) {
    const batch = Array.from({ length: Math.min(options.concurrency, count - start) }, (_, k) => start + k);
    const done = await Promise.all(
      batch.map(async (i) => {
        const size = options.minBytes + Math.floor(Math.random() * (options.maxBytes - options.minBytes + 1));
        const nar = await prepareNar(`bench-narinfo-${i}`, size);
        const references = uploaded.length === 0 ? [] : [...new Set(Array.from({ length: 1 + (i % 4) }, () => uploaded[Math.floor(Math.random() * uploaded.length)]!))];
        await uploadPath(peers.cacheUrl.larder, peers.writeToken, nar, references);
        return nar.storePath;
      }),
    );
    uploaded.push(...done);
  }
  return uploaded;
}

/** Uploads prepared (large) NARs one at a time. */
export async function uploadNars(peers: Peers, nars: readonly PreparedNar[]): Promise<void> {
  for (const nar of nars) await uploadPath(peers.cacheUrl.larder, peers.writeToken, nar);
}

/** GETs a URL with the benchmark's headers: status and body. */
export async function fetchBody(url: string, headers: Readonly<Record<string, string>>): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}
