// How a push shows itself: a live status line on a terminal, one plain line
// per path otherwise (CI logs), nothing but the summary with --json.

import type { PushEvents, PushSummary } from './push.ts';

const MiB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

export function plainProgress(write: (line: string) => void): PushEvents {
  return {
    planned: (p) => write(`${p.total} paths: ${p.present} already in the cache, ${p.upstream} upstream, ${p.toPush} to push (${mib(p.narBytes)} uncompressed)`),
    pushed: (path, size, narWasThere) => write(`pushed ${path} (${narWasThere ? 'NAR already there' : mib(size)})`),
    failed: (path, reason) => write(`failed ${path}: ${reason}`),
  };
}

export function terminalProgress(stream: NodeJS.WriteStream): PushEvents & { finish(): void } {
  let total = 0;
  let done = 0;
  let skipped = '';
  let bytes = 0;
  let current = '';
  const start = performance.now();
  let last = 0;
  const draw = (force = false) => {
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    const rate = bytes / MiB / Math.max(0.001, (now - start) / 1000);
    const name = current.replace(/^.*\/[0-9a-z]{32}-/, '');
    const line = `[${done}/${total}] ${mib(bytes)} ${rate.toFixed(1)} MiB/s${skipped} ${name}`;
    stream.write(`\r\x1b[K${line.slice(0, (stream.columns || 80) - 1)}`);
  };
  return {
    planned: (p) => {
      total = p.toPush;
      skipped = `, skipped ${p.present} present, ${p.upstream} upstream,`;
      draw(true);
    },
    started: (path) => {
      current = path;
      draw();
    },
    bytesSent: (n) => {
      bytes += n;
      draw();
    },
    pushed: () => {
      done++;
      draw();
    },
    failed: (path, reason) => stream.write(`\r\x1b[Kfailed ${path}: ${reason}\n`),
    finish: () => {
      draw(true);
      stream.write('\n');
    },
  };
}

export function summaryLine(summary: PushSummary): string {
  return (
    `${summary.pushed} pushed, ${summary.present} already present, ${summary.upstream} upstream, ` +
    `${summary.failed.length} failed; ${mib(summary.bytes)} sent in ${summary.seconds.toFixed(1)} s`
  );
}

export function summaryJson(summary: PushSummary): string {
  return JSON.stringify({
    pushed: summary.pushed,
    present: summary.present,
    upstream: summary.upstream,
    failed: summary.failed,
    bytes: summary.bytes,
    seconds: Number(summary.seconds.toFixed(3)),
  });
}
