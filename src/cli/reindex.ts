// `larder reindex --cache NAME`: (re)build a cache's index from its files in
// the blob store, e.g. to adopt a cache written by `nix copy --to file://…`.

import type { Command } from 'commander';
import { cacheNameProblem } from '../services/cache-admin.ts';
import { reindexCache } from '../services/reindex.ts';
import { openLarder, serverConfig } from './server-config.ts';
import { UserError } from './user-error.ts';

export function registerReindex(program: Command): void {
  program
    .command('reindex')
    .description("index the narinfos found under a cache's prefix in the blob store (adopts a `nix copy --to file://` cache)")
    .requiredOption('--cache <name>', 'the cache whose files to index (created if the index does not know it)')
    .option('--data <dir>', 'data directory (default ./larder-data)')
    .option('--config <file>', 'larder.toml settings file')
    .option('--json', 'print the report as JSON')
    .action(async (flags: { cache: string; data?: string; config?: string; json?: boolean }) => {
      const problem = cacheNameProblem(flags.cache);
      if (problem) throw new UserError(problem);
      const larder = await openLarder(await serverConfig(flags.config, { 'data-dir': flags.data }));
      try {
        const report = await reindexCache(larder, flags.cache);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(report)}\n`);
        } else {
          for (const { key, reason } of report.skipped) process.stderr.write(`skipped ${key}: ${reason}\n`);
          process.stdout.write(`${report.indexed} paths indexed, ${report.alreadyIndexed} already indexed, ${report.skipped.length} skipped\n`);
        }
        if (report.skipped.length > 0) process.exitCode = 2;
      } finally {
        await larder.close();
      }
    });
}
