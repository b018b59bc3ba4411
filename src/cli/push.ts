// `larder push <cache-url> <path|installable>…`: the run-time closure by
// default, with --build-deps everything needed to rebuild it; only what the
// cache lacks goes up.

import { availableParallelism, tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { LocalNix } from '../client/local-nix.ts';
import { candidates } from '../client/push/candidates.ts';
import { upstreamSkipper } from '../client/push/upstream-skip.ts';
import { plainProgress, summaryJson, summaryLine, terminalProgress } from '../client/push/progress.ts';
import { push, type PushEvents } from '../client/push/push.ts';
import { asUserError, positiveInt, pushEndpoint } from './push-endpoint.ts';
import { UserError } from './user-error.ts';

interface PushFlags {
  pin?: string;
  skipUpstream?: string[];
  stdin?: boolean;
  buildDeps?: boolean;
  jobs?: string;
  token?: string;
  json?: boolean;
  compressionLevel?: string;
}

async function readStdinPaths(): Promise<string[]> {
  const paths: string[] = [];
  for await (const line of createInterface({ input: process.stdin })) {
    const trimmed = line.trim();
    if (trimmed) paths.push(trimmed);
  }
  return paths;
}

/** The upstream URLs a cache declares (as `GET /api/v1/caches/<c>` shows them). */
function declaredUpstreams(cache: Record<string, unknown>): string[] {
  const list = cache.upstreams;
  if (!Array.isArray(list)) return [];
  return list.flatMap((u: unknown) => (typeof u === 'object' && u !== null && typeof (u as { url?: unknown }).url === 'string' ? [(u as { url: string }).url] : []));
}

export function registerPush(program: Command): void {
  program
    .command('push')
    .description('push store paths (their run-time closure, or with --build-deps all that builds them) to a cache')
    .argument('<cache-url>', 'the cache, e.g. http://cache.example.org:8080/main')
    .argument('[paths...]', 'store paths or installables (.#pkg, nixpkgs#hello, /nix/store/…drv)')
    .option('--stdin', 'read store paths from standard input, one per line')
    .option('--build-deps', 'also push build-time dependencies: the derivations and every output that exists locally')
    .option('--jobs <n>', 'NARs prepared and uploaded at once', String(Math.max(4, availableParallelism() * 2)))
    .option('--compression-level <n>', 'zstd level (1-19)', '3')
    .option('--skip-upstream <url>', "skip paths this cache serves, signed by a key the local Nix trusts (repeatable; default: the cache's upstreams)", (url: string, list: string[] = []) => [...list, url.replace(/\/+$/, '')])
    .option('--token <token>', 'a token with write permission (default: $LARDER_TOKEN, then `larder login`)')
    .option('--pin <name>', "keep what was pushed from garbage collection under this name, replacing the pin's previous path (one path or installable)")
    .option('--json', 'print only a JSON summary')
    .action(async (cacheUrl: string, args: string[], flags: PushFlags) => {
      const installables = [...args, ...(flags.stdin ? await readStdinPaths() : [])];
      if (installables.length === 0) throw new UserError('nothing to push: give store paths or installables, or --stdin');
      const jobs = positiveInt(flags.jobs, 'jobs', 4, 256);
      const level = positiveInt(flags.compressionLevel, 'compression-level', 3, 19);
      const endpoint = await pushEndpoint(cacheUrl, flags.token, jobs);
      const nix = new LocalNix();
      const tty = !flags.json && process.stderr.isTTY;
      const live = tty ? terminalProgress(process.stderr) : undefined;
      const events: PushEvents = flags.json ? {} : (live ?? plainProgress((line) => process.stderr.write(`${line}\n`)));
      try {
        const roots = flags.pin === undefined ? [] : await nix.resolve(installables, false);
        if (flags.pin !== undefined && roots.length !== 1) {
          throw new UserError(`--pin names one store path; ${installables.join(' ')} resolved to ${roots.length}`);
        }
        const paths = await candidates(nix, installables, flags.buildDeps ?? false);
        const upstreams = flags.skipUpstream ?? declaredUpstreams(await endpoint.describe());
        const summary = await push({
          endpoint,
          storeDir: nix.storeDir,
          paths,
          jobs,
          servedUpstream: upstreamSkipper(upstreams, upstreams.length ? await nix.trustedPublicKeys() : [], nix.storeDir),
          spool: { tempDir: tmpdir(), compressionLevel: level, memoryLimit: 8 * 1024 * 1024 },
          events,
        });
        live?.finish();
        process.stdout.write(`${flags.json ? summaryJson(summary) : summaryLine(summary)}\n`);
        if (summary.failed.length > 0) {
          const first = summary.failed[0]!;
          throw new UserError(`${summary.failed.length} path(s) failed; first: ${first.path}: ${first.reason}`);
        }
        // Only a complete push is pinned: the pin keeps exactly what is now in the cache.
        if (flags.pin !== undefined) await endpoint.pin(flags.pin, roots[0]!);
      } catch (error) {
        const user = asUserError(error);
        if (user instanceof UserError) throw user;
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EACCES') throw new UserError((error as Error).message);
        throw error;
      } finally {
        endpoint.close();
      }
    });
}
