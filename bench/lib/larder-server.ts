// Starts the real `larder serve` (the CLI, in a child process, on a free port
// and a fresh data directory), reads its banner, and talks to its admin API.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const larderBin = fileURLToPath(new URL('../../bin/larder.ts', import.meta.url));

export class LarderServer {
  readonly url: string;
  readonly adminToken: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly stderrTail: () => string;
  private stopping = false;

  private constructor(child: ChildProcess, url: string, adminToken: string, stderrTail: () => string) {
    this.child = child;
    this.url = url;
    this.adminToken = adminToken;
    this.pid = child.pid!;
    this.stderrTail = stderrTail;
  }

  /** Why the server is gone, when it ended without being stopped; undefined while it runs. */
  death(): string | undefined {
    const { exitCode, signalCode } = this.child;
    if (this.stopping || (exitCode === null && signalCode === null)) return undefined;
    return `larder serve (pid ${this.pid}) ended by itself with ${signalCode ?? `exit code ${exitCode}`}; its stderr ends:\n${this.stderrTail() || '(nothing)'}`;
  }

  /**
   * `workers`: `--workers N` (default 1, one process). `logFile`: standard
   * output (the banner, then larder's request log lines) goes to this file, as
   * a deployment's journal would take it, instead of a pipe to this process.
   */
  static async start(dataDir: string, env: NodeJS.ProcessEnv, options: { workers?: number; logFile?: string } = {}): Promise<LarderServer> {
    const workers = options.workers ?? 1;
    const args = [larderBin, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...(workers === 1 ? [] : ['--workers', String(workers)])];
    const logFd = options.logFile === undefined ? undefined : openSync(options.logFile, 'w');
    const child = spawn(process.execPath, args, {
      env,
      stdio: ['ignore', logFd ?? 'pipe', 'pipe'],
    });
    if (logFd !== undefined) closeSync(logFd);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderr = (stderr + text).slice(-16 * 1024);
    });
    const banner = await new Promise<string>((resolve, reject) => {
      let out = '';
      let poll: NodeJS.Timeout | undefined;
      const ready = (text: string) => {
        if (!/larder is ready.*\n/.test(text)) return false;
        clearTimeout(timer);
        clearInterval(poll);
        resolve(text);
        return true;
      };
      const timer = setTimeout(() => {
        clearInterval(poll);
        reject(new Error(`larder serve printed no banner in 20 s; stderr: ${stderr}`));
      }, 20_000);
      if (options.logFile === undefined) {
        child.stdout!.setEncoding('utf8').on('data', (text: string) => {
          if (out.length > 64 * 1024) return; // banner already read; keep draining the pipe
          out += text;
          ready(out);
        });
      } else {
        const file = options.logFile;
        poll = setInterval(() => void readFile(file, 'utf8').then(ready, () => false), 50);
      }
      child.once('exit', (code) => {
        clearTimeout(timer);
        clearInterval(poll);
        reject(new Error(`larder serve exited with ${code}: ${stderr}`));
      });
    });
    const url = /larder serving (\S+)/.exec(banner)?.[1];
    if (!url) throw new Error(`no URL in larder's banner:\n${banner}`);
    const adminToken = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
    return new LarderServer(child, url, adminToken, () => stderr);
  }

  async api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}/api/v1/${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.adminToken}`, ...(body !== undefined && { 'Content-Type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} /api/v1/${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  /** A fresh, empty cache and a write token for it. */
  async freshCache(name: string): Promise<{ cache: string; url: string; token: string }> {
    await this.api('POST', 'caches', { name });
    const { token } = await this.api<{ token: string }>('POST', 'tokens', { cache: name, permission: 'write', label: 'bench' });
    return { cache: name, url: `${this.url}/${name}`, token };
  }

  /** A new token for a cache (e.g. a read token for a private cache). */
  async token(cache: string, permission: 'read' | 'write' | 'admin'): Promise<string> {
    return (await this.api<{ token: string }>('POST', 'tokens', { cache, permission, label: 'bench' })).token;
  }

  /** The cache's public keys, as `trusted-public-keys` wants them. */
  async publicKeys(cache: string): Promise<string[]> {
    return (await this.api<{ publicKeys: string[] }>('GET', `caches/${cache}`)).publicKeys;
  }

  async missing(cache: string, paths: readonly string[]): Promise<string[]> {
    return (await this.api<{ missing: string[] }>('POST', `caches/${cache}/missing`, { paths })).missing;
  }

  async deleteCache(cache: string): Promise<void> {
    await this.api('DELETE', `caches/${cache}`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await once(this.child, 'exit');
  }
}
