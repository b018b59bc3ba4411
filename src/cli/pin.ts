// `larder pin create|list|delete`: named pins, whose whole closures garbage
// collection keeps whatever their age. Creating a pin of an existing name moves it.

import type { Command } from 'commander';
import { apiAction, connect, formatTime, print, table, withConnectionOptions, type ConnectionFlags } from './admin-command.ts';
import { storePathArgument } from './store-path-arg.ts';

export function registerPin(program: Command): void {
  const pin = program.command('pin').description('keep closures from garbage collection by name');

  withConnectionOptions(
    pin.command('create').description("pin a path of the cache: its whole closure is kept (moves a pin of that name)")
      .argument('<cache>', 'cache name')
      .argument('<name>', 'pin name: letters, digits, . _ + @ = -')
      .argument('<store-path>', 'a store path in the cache, or a link to one such as ./result'),
  ).action(
    apiAction(async (cache: string, name: string, path: string, flags: ConnectionFlags) => {
      const created = await (await connect(flags)).setPin(cache, name, await storePathArgument(path));
      print(flags, created, () => [`pin ${created.name} of cache ${cache}: ${created.storePath}`]);
    }),
  );

  withConnectionOptions(
    pin.command('list').description("list a cache's pins")
      .argument('<cache>', 'cache name'),
  ).action(
    apiAction(async (cache: string, flags: ConnectionFlags) => {
      const pins = await (await connect(flags)).listPins(cache);
      print(flags, pins, () =>
        pins.length === 0
          ? [`cache ${cache} has no pins`]
          : table(['NAME', 'CREATED', 'STORE PATH'], pins.map((p) => [p.name, formatTime(p.createdAt), p.storePath])),
      );
    }),
  );

  withConnectionOptions(
    pin.command('delete').description('remove a pin (garbage collection may then delete what only it kept)')
      .argument('<cache>', 'cache name')
      .argument('<name>', 'pin name'),
  ).action(
    apiAction(async (cache: string, name: string, flags: ConnectionFlags) => {
      const result = await (await connect(flags)).deletePin(cache, name);
      print(flags, result, () => [`deleted pin ${result.deleted} of cache ${cache}`]);
    }),
  );
}
