// larder's log: pino, one line per event on standard output, as JSON (what log
// pipelines read) or as text (what a person at a terminal reads). Request lines
// come from request-observer.ts; nothing logged carries a token.

import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from '../config/config.ts';

export type { Logger };

/** A logger writing to `out` (default: standard output) in the configured format. */
export function createLogger(config: LogConfig, out: NodeJS.WritableStream = process.stdout): Logger {
  const destination: DestinationStream =
    config.format === 'text'
      ? { write: (line: string) => void out.write(textLine(line)) }
      : out === process.stdout
        ? bufferedStdout()
        : out;
  return pino(
    {
      level: config.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * Standard output, written synchronously (sonic-boom's asynchronous mode takes a thread-pool round
 * trip per write: about 80 against 40 µs of server CPU per narinfo GET) and a few lines at a time:
 * a write(2) per line cost another ~40 µs per request (bench/narinfo.ts). Lines are kept at most a
 * second, and every write stays under PIPE_BUF (4096 bytes), so whole lines land even when several
 * workers share one pipe; what is left is written when the process exits.
 */
function bufferedStdout(): DestinationStream {
  const destination = pino.destination({ dest: 1, sync: true, minLength: 3072, periodicFlush: 1000 });
  process.once('exit', () => destination.flushSync());
  return destination;
}

const FIRST_KEYS = new Set(['time', 'level', 'msg', 'err', 'pid']);

/** One JSON log line as `time LEVEL msg key=value…`, an error's stack on the lines after it. */
export function textLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const fields = Object.entries(entry)
    .filter(([key, value]) => !FIRST_KEYS.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' && !/[\s"=]/.test(value) && value !== '' ? value : JSON.stringify(value)}`);
  const head = [entry.time, String(entry.level ?? '').toUpperCase(), entry.msg, ...fields].filter((part) => part !== undefined && part !== '').join(' ');
  const stack = (entry.err as { stack?: unknown } | undefined)?.stack;
  return typeof stack === 'string' ? `${head}\n${stack.replace(/^/gm, '    ')}\n` : `${head}\n`;
}
