// Starts `larder serve` as a user would (the real CLI, in a child process, on
// a free port and a fresh data directory) and reads what its banner prints.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { larderBin } from './larder-cli.ts';

export interface RunningLarder {
  readonly url: string;
  /** URL of the first cache, `main`. */
  readonly cacheUrl: string;
  readonly publicKey: string;
  readonly writeToken: string;
  readonly adminToken: string;
  readonly dataDir: string;
  readonly banner: string;
  /** The nix.conf and netrc lines the banner tells a user to paste. */
  readonly nixConfLines: string[];
  readonly netrcLine: string;
  /** The server process, e.g. to read its memory use from /proc. */
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startLarder(
  t: TestContext,
  options: { args?: readonly string[]; dataDir?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningLarder> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'larder-data-')));
  if (!options.dataDir) t.after(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [larderBin, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  // DEBUG_LARDER_STDERR=1 shows what the server says while a test runs.
  if (process.env.DEBUG_LARDER_STDERR) child.stderr!.on('data', (text: string) => process.stderr.write(`[larder ${child.pid}] ${text}`));
  const banner = await readBanner(child, () => stderr);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  };
  t.after(stop);
  const url = /larder serving (\S+)/.exec(banner)![1]!;
  const netrcLine = /^ {2}(machine .*)$/m.exec(banner)?.[1] ?? '';
  return {
    url,
    cacheUrl: `${url}/main`,
    publicKey: /public key: (\S+)/.exec(banner)![1]!,
    writeToken: / password (\S+)/.exec(netrcLine)?.[1] ?? '',
    // A replica joining an initialised index prints no first-start lines and writes no token file.
    adminToken: (await readFile(join(dataDir, 'admin-token'), 'utf8').catch(() => '')).trim(),
    dataDir,
    banner,
    nixConfLines: [...banner.matchAll(/^ {2}((?:extra-substituters|extra-trusted-public-keys|netrc-file) = .*)$/gm)].map((m) => m[1]!),
    netrcLine,
    pid: child.pid!,
    stop,
  };
}

/** Resolves with stdout once the banner is complete: its last line says larder is ready. */
export function readBanner(child: ChildProcess, stderr: () => string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`larder serve printed no banner in ${timeoutMs / 1000} s; stderr: ${stderr()}`)), timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      if (/larder is ready.*\n/.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`larder serve exited with ${code}: ${stderr()}`));
    });
  });
}

/** fetch with a token as Bearer. */
export function api(server: RunningLarder, path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${init.token ?? server.adminToken}`);
  if (init.body !== undefined) headers.set('Content-Type', 'application/json');
  return fetch(`${server.url}${path}`, { ...init, headers });
}
