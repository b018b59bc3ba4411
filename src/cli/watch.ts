// `larder queue` records paths to push later; `larder watch` pushes whatever
// the queue holds, as it arrives. Together with contrib/post-build-hook.sh
// every build's outputs reach the cache without the build waiting for it.

import { watch as watchDir } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { LocalNix } from '../client/local-nix.ts';
import { candidates } from '../client/push/candidates.ts';
import { summaryLine } from '../client/push/progress.ts';
import { push } from '../client/push/push.ts';
import { defaultQueueDir, enqueue, readQueue, removeEntries } from '../client/push/queue.ts';
import { asUserError, positiveInt, pushEndpoint } from './push-endpoint.ts';
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
      const jobs = positiveInt(flags.jobs, 'jobs', 4, 256);
      const endpoint = await pushEndpoint(cacheUrl, flags.token, jobs);
      const dir = flags.queueDir ?? defaultQueueDir(process.env);
      await mkdir(dir, { recursive: true });
      const nix = new LocalNix();
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
            throw asUserError(error, '; the paths stay queued');
          }
          if (!drained) throw new UserError('some paths could not be pushed; they stay queued');
          return;
        }
        log(`watching ${dir}, pushing to ${endpoint.location.url}`);
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
