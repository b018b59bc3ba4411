// Runs a client command and measures it: wall time (monotonic clock around
// the child) and peak resident memory. Peak memory comes from GNU time's %M
// (the child's ru_maxrss, which covers the largest process of its tree) when
// /usr/bin/time exists, otherwise from sampling /proc every 50 ms.

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

const GNU_TIME = '/usr/bin/time';

export type RssMethod = 'gnu-time' | 'proc-sampling';

/** How peak memory is measured here; says so once when GNU time is missing. */
export function rssMethod(): RssMethod {
  const probe = spawnSync(GNU_TIME, ['-f', '%M', 'true'], { encoding: 'utf8' });
  return probe.status === 0 && /^\d+\s*$/.test(probe.stderr) ? 'gnu-time' : 'proc-sampling';
}

export interface Measured {
  readonly seconds: number;
  /** Peak resident set size of the client process (tree), in KiB. */
  readonly maxRssKiB: number;
  /** User + system CPU time of the client and the children it waited for (GNU time only). */
  readonly cpuSeconds: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandFailed extends Error {}

/** Keeps the last `limit` characters of a stream: enough for an error message, flat memory. */
function tail(limit: number): { add: (text: string) => void; text: () => string } {
  let kept = '';
  return {
    add: (text) => {
      kept += text;
      if (kept.length > 2 * limit) kept = kept.slice(-limit);
    },
    text: () => kept.slice(-limit),
  };
}

export async function measure(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; method: RssMethod; scratchDir: string },
): Promise<Measured> {
  const timeFile = join(options.scratchDir, `time-${randomBytes(4).toString('hex')}`);
  const [file, argv] =
    options.method === 'gnu-time' ? [GNU_TIME, ['-o', timeFile, '-f', '%M %U %S', command, ...args]] : [command, [...args]];
  const out = tail(64 * 1024);
  const err = tail(64 * 1024);
  const started = performance.now();
  const child = spawn(file, argv, { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8').on('data', out.add);
  child.stderr.setEncoding('utf8').on('data', err.add);
  let sampled = 0;
  const sampler =
    options.method === 'proc-sampling'
      ? setInterval(() => {
          if (child.pid !== undefined) sampled = Math.max(sampled, treePeakKiB(child.pid));
        }, 50)
      : undefined;
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status, signal) => resolve(signal ? -1 : status));
  });
  const seconds = (performance.now() - started) / 1000;
  if (sampler) clearInterval(sampler);
  let maxRssKiB = sampled;
  let cpuSeconds: number | null = null;
  if (options.method === 'gnu-time') {
    const text = await readFile(timeFile, 'utf8').catch(() => '');
    await rm(timeFile, { force: true });
    // GNU time writes "Command exited with non-zero status N" before the figures on failure.
    const [rss, user, system] = (text.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
    maxRssKiB = rss ?? 0;
    cpuSeconds = user !== undefined && system !== undefined ? Number((user + system).toFixed(2)) : null;
  }
  if (code !== 0) {
    throw new CommandFailed(`${command} ${args.join(' ')} exited with ${code}:\n${err.text() || out.text()}`);
  }
  return { seconds, maxRssKiB, cpuSeconds, stdout: out.text(), stderr: err.text() };
}

/** The largest VmHWM among a process and its descendants (0 once they are gone). */
function treePeakKiB(pid: number): number {
  let peak = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const current = stack.pop()!;
    try {
      peak = Math.max(peak, statusField(current, 'VmHWM'));
      for (const task of readFileSync(`/proc/${current}/task/${current}/children`, 'utf8').split(' ')) {
        if (task.trim()) stack.push(Number(task));
      }
    } catch {
      // The process ended between two reads.
    }
  }
  return peak;
}

/** A process and its live descendants (a server's primary and its workers, nginx's master and workers). */
export function processTree(pid: number): number[] {
  const found: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const current = stack.pop()!;
    try {
      const children = readFileSync(`/proc/${current}/task/${current}/children`, 'utf8').split(' ').filter((t) => t.trim());
      found.push(current);
      for (const child of children) stack.push(Number(child));
    } catch {
      // The process ended between two reads.
    }
  }
  return found;
}

/** User + system CPU seconds used so far by a process and its live descendants. */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      total += processCpuSeconds(p);
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

/** A `kB` field of /proc/<pid>/status, in KiB. */
export function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : 0;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** User + system CPU seconds a running process has used so far (all its threads). */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resets a process's VmHWM to its current RSS (Linux: write 5 to clear_refs); false when not allowed. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return statusField(pid, 'VmHWM') <= statusField(pid, 'VmRSS') + 1024;
  } catch {
    return false;
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** CPU seconds all processes of the machine have used since boot (from /proc/stat). */
export function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
}

/**
 * Waits until the rest of the machine is idle (under `threshold` CPUs busy over
 * a second), for at most `maxSeconds`; resolves with the seconds waited, or -1
 * when it gave up.
 */
export async function waitForQuiet(maxSeconds: number, threshold = 0.15): Promise<number> {
  const started = performance.now();
  for (;;) {
    const before = machineBusySeconds();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const waited = (performance.now() - started) / 1000;
    if (machineBusySeconds() - before < threshold) return Math.round(waited);
    if (waited >= maxSeconds) return -1;
  }
}
