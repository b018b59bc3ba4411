// `larder key list|rotate|retire`: a cache's signing keys. Rotation leaves the
// old key published, so clients keep trusting what it signed until it is retired.

import type { Command } from 'commander';
import { apiAction, connect, fields, formatTime, print, table, withConnectionOptions, type ConnectionFlags } from './admin-command.ts';

export function registerKey(program: Command): void {
  const key = program.command('key').description("list, rotate and retire a cache's signing keys");

  withConnectionOptions(
    key.command('list').description("list a cache's keys: active, published (still trusted) and retired")
      .argument('<cache>', 'cache name'),
  ).action(
    apiAction(async (cache: string, flags: ConnectionFlags) => {
      const keys = await (await connect(flags)).listKeys(cache);
      print(flags, keys, () =>
        table(
          ['NAME', 'STATE', 'CREATED', 'PUBLIC KEY'],
          keys.map((k) => [k.name, k.state, formatTime(k.createdAt), k.publicKey]),
        ),
      );
    }),
  );

  withConnectionOptions(
    key.command('rotate').description('make a new active key; the old one stays published')
      .argument('<cache>', 'cache name'),
  ).action(
    apiAction(async (cache: string, flags: ConnectionFlags) => {
      const created = await (await connect(flags)).rotateKey(cache);
      print(flags, created, () => [
        ...fields([
          ['new active key', created.name],
          ['public key', created.publicKey],
        ]),
        'Clients must trust the new public key (larder use prints the lines); the previous key stays',
        `published until you run: larder key retire ${cache} <name>`,
      ]);
    }),
  );

  withConnectionOptions(
    key.command('retire').description('stop publishing a key among those clients should trust')
      .argument('<cache>', 'cache name')
      .argument('<key>', 'key name, as `larder key list` shows it'),
  ).action(
    apiAction(async (cache: string, name: string, flags: ConnectionFlags) => {
      const result = await (await connect(flags)).retireKey(cache, name);
      print(flags, result, () => [`retired key ${result.retired} of cache ${cache}`]);
    }),
  );
}
