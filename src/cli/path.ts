// `larder path delete CACHE STORE-PATH [--with-dependents]`: removes one path
// from a cache; refused while other paths refer to it, unless they go too.

import { basename } from 'node:path';
import type { Command } from 'commander';
import { formatBytes } from '../services/units.ts';
import { apiAction, connect, print, withConnectionOptions, type ConnectionFlags } from './admin-command.ts';
import { storePathArgument } from './store-path-arg.ts';

export function registerPath(program: Command): void {
  const path = program.command('path').description("remove paths from a cache");

  withConnectionOptions(
    path.command('delete').description('delete a path from a cache (refused while other paths refer to it)')
      .argument('<cache>', 'cache name')
      .argument('<store-path>', 'the store path, or a link to it such as ./result')
      .option('--with-dependents', 'also delete every path that refers to it, directly or not'),
  ).action(
    apiAction(async (cache: string, storePath: string, flags: ConnectionFlags & { withDependents?: boolean }) => {
      const base = basename(await storePathArgument(storePath));
      const result = await (await connect(flags)).deletePath(cache, base, flags.withDependents ?? false);
      print(flags, result, () => [
        `deleted ${result.deleted.length} path${result.deleted.length === 1 ? '' : 's'} from cache ${cache} ` +
          `(${result.nars} NAR${result.nars === 1 ? '' : 's'}, ${formatBytes(result.bytes)}):`,
        ...result.deleted.map((p) => `  ${p}`),
      ]);
    }),
  );
}
