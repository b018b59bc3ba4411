// `larder queue` records paths to push later; `larder watch` pushes whatever
// the queue holds, as it arrives. Together with contrib/post-build-hook.sh
// every build's outputs reach the cache without the build waiting for it.

import { watch as watchDir } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { loadLogin } from './credentials-store.ts';
import { LocalNix, NixCommandError } from '../client/local-nix.ts';
import { CacheEndpoint, parseCacheUrl, ServerRefusal } from '../client/push/cache-endpoint.ts';
import { candidates } from '../client/push/candidates.ts';
import { summaryLine } from '../client/push/progress.ts';
import { push } from '../client/push/push.ts';
import { defaultQueueDir, enqueue, readQueue, removeEntries } from '../client/push/queue.ts';
import { UserError } from './user-error.ts';

export function registerQueue(program: Command): void {
  program
    .command('queue')
    .description('record store paths for `larder watch` to push (default: $OUT_PATHS, as a post-build hook)')
    .argument('[paths...]', 'store paths')
    .option('--queue-dir <dir>', 'queue directory (default: $LARDER_QUEUE_DIR, /var/lib/larder/queue as root)')
    .action(async (args: string[], flags: { queueDir?: string }) => {
      const paths = args.length > 0 ? args : (process.env.OUT_PATHS ?? '').split(/\s+/).filter(Boolean);
      if (paths.length === 0) throw new UserError('no paths given and $OUT_PATHS is empty');
      await enqueue(flags.queueDir ?? defaultQueueDir(process.env), paths);
    });
}

interface WatchFlags {
  queueDir?: string;
  buildDeps?: boolean;
  jobs?: string;
  token?: string;
  once?: boolean;
}

export function registerWatch(program: Command): void {
  program
    .command('watch')
    .description('push the paths queued by the post-build hook, as they arrive')
    .argument('<cache-url>', 'the cache, e.g. http://cache.example.org:8080/main')
    .option('--queue-dir <dir>', 'queue directory (default: $LARDER_QUEUE_DIR, /var/lib/larder/queue as root)')
    .option('--build-deps', 'also push build-time dependencies of queued paths')
    .option('--jobs <n>', 'NARs prepared and uploaded at once', '4')
    .option('--token <token>', 'a token with write permission (default: $LARDER_TOKEN, then `larder login`)')
    .option('--once', 'drain the queue once and exit')
    .action(async (cacheUrl: string, flags: WatchFlags) => {
      let location;
      try {
        location = parseCacheUrl(cacheUrl);
      } catch (error) {
        throw new UserError((error as Error).message);
      }
      const dir = flags.queueDir ?? defaultQueueDir(process.env);
      await mkdir(dir, { recursive: true });
      const login = await loadLogin(process.env);
      const token = flags.token ?? process.env.LARDER_TOKEN ?? (login?.server === location.server ? login.token : undefined);
      const jobs = Number(flags.jobs);
      if (!Number.isInteger(jobs) || jobs < 1) throw new UserError(`--jobs: expected a whole number, got '${flags.jobs}'`);
      const nix = new LocalNix();
      const endpoint = new CacheEndpoint(location, { token, connections: jobs + 2, attempts: 6, backoffMs: 500 });
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

      /** One pass over the queue; true when it was drained without failures. */
      const drain = async (): Promise<boolean> => {
        const entries = await readQueue(dir);
        if (entries.length === 0) return true;
        const queued = [...new Set(entries.flatMap((e) => e.paths))];
        // A queued .drv stands for its outputs (what the hook records when Nix gives it no OUT_PATHS).
        const drvs = queued.filter((p) => p.endsWith('.drv'));
        const paths = [...queued.filter((p) => !p.endsWith('.drv')), ...(drvs.length ? await nix.existingOutputs(drvs) : [])];
        // Paths garbage-collected since they were queued can no longer be pushed: skip them.
        const present = (await Promise.all(paths.map(async (p) => ((await nix.isValid(p)) ? p : undefined)))).filter((p) => p !== undefined);
        const summary = present.length
          ? await push({
              endpoint,
              storeDir: nix.storeDir,
              paths: await candidates(nix, present, flags.buildDeps ?? false),
              jobs,
              spool: { tempDir: tmpdir(), compressionLevel: 3, memoryLimit: 8 * 1024 * 1024 },
              events: { failed: (path, reason) => log(`failed ${path}: ${reason}`) },
            })
          : undefined;
        if (summary) log(summaryLine(summary));
        if (summary && summary.failed.length > 0) return false;
        await removeEntries(entries);
        return true;
      };

      try {
        if (flags.once) {
          let drained;
          try {
            drained = await drain();
          } catch (error) {
            if (error instanceof ServerRefusal || error instanceof NixCommandError) throw new UserError(`${error.message}; the paths stay queued`);
            throw error;
          }
          if (!drained) throw new UserError('some paths could not be pushed; they stay queued');
          return;
        }
        log(`watching ${dir}, pushing to ${location.url}`);
        let wake: (() => void) | undefined;
        const watcher = watchDir(dir, () => wake?.());
        try {
          for (let backoff = 1000; ; ) {
            const ok = await drain().catch((error: Error) => {
              log(`push failed: ${error.message}`);
              return false;
            });
            // After a failure, back off (up to 5 minutes); otherwise wait for a new entry, or poll
            // in case the file system does not report one.
            backoff = ok ? 1000 : Math.min(backoff * 2, 5 * 60_000);
            await Promise.race([new Promise<void>((resolve) => (wake = resolve)), sleep(ok ? 5000 : backoff)]);
            wake = undefined;
            if (ok) await sleep(200); // let a burst of builds land in one push
          }
        } finally {
          watcher.close();
        }
      } finally {
        endpoint.close();
      }
    });
}
