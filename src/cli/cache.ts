// `larder cache create|list|show|update|delete`: caches, through the admin API;
// `update --retention/--max-size` sets the garbage collection policy.

import type { Command } from 'commander';
import type { CacheInfo, CacheSettings } from '../client/api-client.ts';
import { apiAction, connect, fields, formatTime, print, table, withConnectionOptions, type ConnectionFlags } from './admin-command.ts';
import { UserError } from './user-error.ts';

interface SettingFlags extends ConnectionFlags {
  public?: boolean;
  private?: boolean;
  priority?: string;
  compression?: string;
  retention?: string;
  maxSize?: string;
  mirror?: boolean;
}

/** "none" (or "off") removes a limit; anything else goes to the server, which checks it. */
const limit = (value: string) => (value === 'none' || value === 'off' ? null : value);

function settingsOf(flags: SettingFlags): CacheSettings {
  if (flags.public && flags.private) throw new UserError('pass --public or --private, not both');
  const settings: { public?: boolean; priority?: number; compression?: string; mirror?: boolean; retention?: string | null; maxSize?: string | null } = {};
  if (flags.mirror !== undefined) settings.mirror = flags.mirror;
  if (flags.retention !== undefined) settings.retention = limit(flags.retention);
  if (flags.maxSize !== undefined) settings.maxSize = limit(flags.maxSize);
  if (flags.public) settings.public = true;
  if (flags.private) settings.public = false;
  if (flags.priority !== undefined) {
    // The server checks the range; the CLI only makes sure it sends a number.
    if (!/^\d+$/.test(flags.priority)) throw new UserError(`--priority: expected a whole number, got '${flags.priority}'`);
    settings.priority = Number(flags.priority);
  }
  if (flags.compression !== undefined) settings.compression = flags.compression;
  return settings;
}

function describe(cache: CacheInfo, server: string): string[] {
  return fields([
    ['name', cache.name],
    ['url', `${server}/${cache.name}`],
    ['access', cache.public ? 'public' : 'private'],
    ['priority', String(cache.priority)],
    ['compression', cache.compression],
    ['retention', cache.retention ?? 'none (keep every path)'],
    ['max-size', cache.maxSize ?? 'none'],
    ['mirror', cache.mirror ? 'on: paths it lacks are fetched from its upstreams' : 'off'],
    ...(cache.upstreams ?? []).map((u) => ['upstream', `${u.url} (priority ${u.priority})`] as const),
    ['created', formatTime(cache.createdAt)],
    ...cache.publicKeys.map((key) => ['public key', key] as const),
  ]);
}

export function registerCache(program: Command): void {
  const cache = program.command('cache').description('create, list, show, change and delete caches');

  withConnectionOptions(
    cache.command('create').description('create a cache with a new signing key')
      .argument('<name>', 'cache name: a-z 0-9 . _ -')
      .option('--public', 'anyone may read it (default: read tokens only)')
      .option('--priority <n>', 'nix-cache-info priority: lower is tried first (default 40)')
      .option('--compression <c>', 'compression for pushes: zstd, xz or none (default zstd)')
      .option('--mirror', 'fetch paths it lacks from its upstreams and keep them (a pull-through proxy)'),
  ).action(
    apiAction(async (name: string, flags: SettingFlags) => {
      const client = await connect(flags);
      const created = await client.createCache(name, settingsOf(flags));
      print(flags, created, () => [`created cache ${created.name}`, ...describe(created, client.server)]);
    }),
  );

  withConnectionOptions(cache.command('list').description('list the caches the token can read')).action(
    apiAction(async (flags: ConnectionFlags) => {
      const client = await connect(flags);
      const caches = await client.listCaches();
      print(flags, caches, () =>
        caches.length === 0
          ? ['no caches']
          : table(
              ['NAME', 'ACCESS', 'PRIORITY', 'COMPRESSION', 'URL'],
              caches.map((c) => [c.name, c.public ? 'public' : 'private', String(c.priority), c.compression, `${client.server}/${c.name}`]),
            ),
      );
    }),
  );

  withConnectionOptions(
    cache.command('show').description("show a cache's settings and public keys")
      .argument('<name>', 'cache name'),
  ).action(
    apiAction(async (name: string, flags: ConnectionFlags) => {
      const client = await connect(flags);
      const shown = await client.showCache(name);
      print(flags, shown, () => describe(shown, client.server));
    }),
  );

  withConnectionOptions(
    cache.command('update').description("change a cache's settings")
      .argument('<name>', 'cache name')
      .option('--public', 'anyone may read it')
      .option('--private', 'reading needs a token')
      .option('--priority <n>', 'nix-cache-info priority: lower is tried first')
      .option('--compression <c>', 'compression for pushes: zstd, xz or none')
      .option('--retention <duration>', "garbage collection keeps paths accessed within it, e.g. 30d, 12h ('none': keep all)")
      .option('--max-size <size>', "garbage collection evicts least recently used paths beyond it, e.g. 200GiB ('none')")
      .option('--mirror', 'fetch paths it lacks from its upstreams and keep them (a pull-through proxy)')
      .option('--no-mirror', 'serve only what was pushed'),
  ).action(
    apiAction(async (name: string, flags: SettingFlags) => {
      const settings = settingsOf(flags);
      if (Object.keys(settings).length === 0) {
        throw new UserError('nothing to change: pass --public, --private, --priority N, --compression C, --retention D, --max-size S or --[no-]mirror');
      }
      const client = await connect(flags);
      const updated = await client.updateCache(name, settings);
      print(flags, updated, () => [`updated cache ${updated.name}`, ...describe(updated, client.server)]);
    }),
  );

  withConnectionOptions(
    cache.command('delete').description('delete a cache with everything in it')
      .argument('<name>', 'cache name')
      .option('--yes', 'really delete: its paths, keys and tokens are gone for good'),
  ).action(
    apiAction(async (name: string, flags: ConnectionFlags & { yes?: boolean }) => {
      if (!flags.yes) throw new UserError(`deleting cache '${name}' removes all its paths, keys and tokens; pass --yes to confirm`);
      const client = await connect(flags);
      const result = await client.deleteCache(name);
      print(flags, result, () => [`deleted cache ${result.deleted}`]);
    }),
  );
}
