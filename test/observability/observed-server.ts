// `larder serve` as a user runs it (the real CLI in a child process, on a free
// port and a fresh data directory), with everything it writes to standard
// output kept: the banner, then one log line per event.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { larderBin } from '../helpers/larder-cli.ts';
import { readBanner } from '../helpers/larder-server.ts';
import { parseExposition, type Sample } from './prometheus-text.ts';

export interface ObservedLarder {
  readonly url: string;
  readonly cacheUrl: string;
  readonly adminToken: string;
  readonly writeToken: string;
  readonly banner: string;
  /** Everything on standard output so far (banner included). */
  stdout(): string;
  /** Everything on standard error so far. */
  stderr(): string;
  /** The lines after the banner, each parsed as JSON (throws on a line that is not). */
  logLines(): Record<string, unknown>[];
  /** GET /metrics on a new connection, parsed; rejects unless 200. */
  scrape(token?: string): Promise<Sample[]>;
  stop(): Promise<void>;
}

export async function startObservedLarder(t: TestContext, options: { args?: readonly string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ObservedLarder> {
  const dataDir = await mkdtemp(join(tmpdir(), 'larder-obs-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [larderBin, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  };
  t.after(stop);
  const bannerRead = readBanner(child, () => stderr, 60_000);
  child.stdout!.on('data', (text: string) => (stdout += text));
  const banner = await bannerRead;
  const url = /larder serving (\S+)/.exec(banner)![1]!;
  const adminToken = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
  const afterBanner = () => stdout.slice(stdout.indexOf(banner) + banner.length);
  return {
    url,
    cacheUrl: `${url}/main`,
    adminToken,
    writeToken: / password (\S+)/.exec(banner)?.[1] ?? '',
    banner,
    stdout: () => stdout,
    stderr: () => stderr,
    logLines: () =>
      afterBanner()
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            throw new Error(`log line is not JSON: ${line}`);
          }
        }),
    scrape: async (token) => {
      // A connection of its own each time, so that with several workers any of them may answer.
      const res = await exchange(`${url}/metrics`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.body.toString()}`);
      return parseExposition(res.body.toString());
    },
    stop,
  };
}

export interface Exchange {
  readonly status: number;
  readonly body: Buffer;
  /** What the client's socket wrote and read: the request and the answer, headers included. */
  readonly clientWrote: number;
  readonly clientRead: number;
}

/** One request on its own connection, with the socket's byte counts once it has closed. */
export function exchange(url: string, options: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const socket = res.socket;
        const done = () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), clientWrote: socket.bytesWritten, clientRead: socket.bytesRead });
        if (socket.destroyed) done();
        else socket.once('close', done);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Waits for a log line matching `predicate` (lines are written after the answer). */
export async function logLine(server: ObservedLarder, predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = server.logLines().find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs / 1000} s; lines: ${JSON.stringify(server.logLines().slice(-5))}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
