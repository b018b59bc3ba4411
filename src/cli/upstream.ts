// `larder upstream list|add|remove`: the caches a cache trusts for references
// it lacks and, with `cache update --mirror`, fetches from on a miss. Each
// change replaces the whole list through the API, which checks it.

import type { Command } from 'commander';
import type { UpstreamInfo } from '../client/api-client.ts';
import { apiAction, connect, print, table, withConnectionOptions, type ConnectionFlags } from './admin-command.ts';
import { UserError } from './user-error.ts';

interface AddFlags extends ConnectionFlags {
  key: string[];
  priority: string;
}

function lines(cache: string, upstreams: readonly UpstreamInfo[]): string[] {
  if (upstreams.length === 0) return [`cache ${cache} has no upstreams`];
  return table(
    ['URL', 'PRIORITY', 'TRUSTED KEYS'],
    upstreams.map((u) => [u.url, String(u.priority), u.publicKeys.join(' ')]),
  );
}

export function registerUpstream(program: Command): void {
  const upstream = program.command('upstream').description("a cache's upstream caches: trusted for references, fetched from when mirroring");

  withConnectionOptions(
    upstream.command('list').description("list a cache's upstreams")
      .argument('<cache>', 'cache name'),
  ).action(
    apiAction(async (cache: string, flags: ConnectionFlags) => {
      const upstreams = await (await connect(flags)).listUpstreams(cache);
      print(flags, upstreams, () => lines(cache, upstreams));
    }),
  );

  withConnectionOptions(
    upstream.command('add').description('add an upstream, or change the keys and priority of one')
      .argument('<cache>', 'cache name')
      .argument('<url>', 'the upstream binary cache, e.g. https://cache.nixos.org')
      .requiredOption('--key <public-key>', "a key its narinfos must be signed by, e.g. cache.nixos.org-1:6NCH… (repeatable)", (key: string, keys: string[] = []) => [...keys, key])
      .option('--priority <n>', 'lower is asked first', '40'),
  ).action(
    apiAction(async (cache: string, url: string, flags: AddFlags) => {
      if (!/^\d+$/.test(flags.priority)) throw new UserError(`--priority: expected a whole number, got '${flags.priority}'`);
      const client = await connect(flags);
      const wanted = url.replace(/\/+$/, '');
      const others = (await client.listUpstreams(cache)).filter((u) => u.url !== wanted);
      const upstreams = await client.setUpstreams(cache, [...others, { url: wanted, publicKeys: flags.key, priority: Number(flags.priority) }]);
      print(flags, upstreams, () => lines(cache, upstreams));
    }),
  );

  withConnectionOptions(
    upstream.command('remove').description('remove an upstream (narinfos found there whose NAR was not fetched are forgotten)')
      .argument('<cache>', 'cache name')
      .argument('<url>', 'the upstream URL as listed'),
  ).action(
    apiAction(async (cache: string, url: string, flags: ConnectionFlags) => {
      const client = await connect(flags);
      const wanted = url.replace(/\/+$/, '');
      const current = await client.listUpstreams(cache);
      if (!current.some((u) => u.url === wanted)) throw new UserError(`cache ${cache} has no upstream ${wanted}`);
      const upstreams = await client.setUpstreams(cache, current.filter((u) => u.url !== wanted));
      print(flags, upstreams, () => lines(cache, upstreams));
    }),
  );
}
