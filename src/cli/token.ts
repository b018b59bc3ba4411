// `larder token create|list|revoke`. `create` prints the new token alone on
// its last line, so that scripts can take it with `| tail -1`.

import type { Command } from 'commander';
import type { Permission, TokenInfo } from '../client/api-client.ts';
import { apiAction, connect, formatTime, print, table, withConnectionOptions, type ConnectionFlags } from './admin-command.ts';
import { UserError } from './user-error.ts';

const PERMISSIONS: readonly string[] = ['read', 'write', 'admin'] satisfies Permission[];

const SECONDS_PER_UNIT: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** `30d`, `12h`, `3600s` (also `m` minutes, `w` weeks) in seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhdw])$/.exec(text.trim());
  const seconds = match ? Number(match[1]) * SECONDS_PER_UNIT[match[2]!]! : 0;
  if (!(seconds > 0)) throw new UserError(`--expires: expected a duration such as 30d, 12h or 3600s, got '${text}'`);
  return seconds;
}

function grant(token: Pick<TokenInfo, 'cache' | 'permission'>): string {
  return token.cache === null ? 'server admin (every cache)' : `${token.permission} on cache ${token.cache}`;
}

function status(token: TokenInfo): string {
  if (token.revokedAt !== null) return `revoked ${formatTime(token.revokedAt)}`;
  if (token.expiresAt !== null && token.expiresAt <= Date.now()) return 'expired';
  return 'active';
}

interface CreateFlags extends ConnectionFlags {
  cache?: string;
  perm: string;
  label?: string;
  expires?: string;
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('create, list and revoke access tokens');

  withConnectionOptions(
    token.command('create').description('issue a token; it is shown only once')
      .option('--cache <cache>', 'the cache it grants access to (omit for a server-admin token)')
      .requiredOption('--perm <permission>', 'read, write (push) or admin')
      .option('--label <label>', 'what it is for, e.g. ci or laptop')
      .option('--expires <duration>', 'lifetime such as 30d, 12h or 3600s (default: never)'),
  ).action(
    apiAction(async (flags: CreateFlags) => {
      if (!PERMISSIONS.includes(flags.perm)) throw new UserError(`--perm: expected read, write or admin, got '${flags.perm}'`);
      if (flags.cache === undefined && flags.perm !== 'admin') {
        throw new UserError(`a ${flags.perm} token needs --cache C (only server-admin tokens have no cache)`);
      }
      const expiresInSeconds = flags.expires === undefined ? undefined : parseDuration(flags.expires);
      const issued = await (await connect(flags)).createToken({
        permission: flags.perm as Permission,
        ...(flags.cache !== undefined && { cache: flags.cache }),
        ...(flags.label !== undefined && { label: flags.label }),
        ...(expiresInSeconds !== undefined && { expiresInSeconds }),
      });
      print(flags, issued, () => [
        `token ${issued.id}: ${grant(issued)}${issued.label ? `, label ${issued.label}` : ''}, ${
          issued.expiresAt === null ? 'never expires' : `expires ${formatTime(issued.expiresAt)}`
        }`,
        'This is the only time the token is shown; store it now:',
        issued.token,
      ]);
    }),
  );

  withConnectionOptions(
    token.command('list').description('list tokens (never their secrets)')
      .option('--cache <cache>', "only this cache's tokens (enough with an admin token of that cache)"),
  ).action(
    apiAction(async (flags: ConnectionFlags & { cache?: string }) => {
      const tokens = await (await connect(flags)).listTokens(flags.cache);
      print(flags, tokens, () =>
        table(
          ['ID', 'CACHE', 'PERMISSION', 'LABEL', 'CREATED', 'EXPIRES', 'STATUS'],
          tokens.map((t) => [
            t.id,
            t.cache ?? '*',
            t.permission,
            t.label,
            formatTime(t.createdAt),
            t.expiresAt === null ? 'never' : formatTime(t.expiresAt),
            status(t),
          ]),
        ),
      );
    }),
  );

  withConnectionOptions(
    token.command('revoke').description('revoke a token: every larder process refuses it within a second')
      .argument('<id>', 'token id, as `larder token list` shows it'),
  ).action(
    apiAction(async (id: string, flags: ConnectionFlags) => {
      const result = await (await connect(flags)).revokeToken(id);
      print(flags, result, () => [`revoked token ${result.revoked}`]);
    }),
  );
}
