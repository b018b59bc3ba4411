// `larder login URL` checks a token against the server and saves both, so that
// later commands need no --server/--token; `larder logout` forgets them.

import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { ApiClient, ApiError } from '../client/api-client.ts';
import { normalizeServerUrl, removeLogin, saveLogin } from './credentials-store.ts';
import { apiAction, print, withJsonOption, type OutputFlags } from './admin-command.ts';
import { UserError } from './user-error.ts';

/** The first line of standard input, prompting when a person is typing. */
async function readTokenLine(server: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(`token for ${server}: `);
  const lines = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const line of lines) return line.trim();
    return '';
  } finally {
    lines.close();
  }
}

export function registerLogin(program: Command): void {
  withJsonOption(program.command('login').description('check a token against a larder server and save both for later commands'))
    .argument('<url>', 'server URL, e.g. https://cache.example.org')
    .option('--token <token>', 'API token (default: $LARDER_TOKEN, else one line read from standard input)')
    .action(
      apiAction(async (url: string, flags: OutputFlags & { token?: string }) => {
        const server = normalizeServerUrl(url);
        const token = flags.token ?? (process.env.LARDER_TOKEN || (await readTokenLine(server)));
        if (!token) throw new UserError('no token: pass --token T, set LARDER_TOKEN, or give it on standard input');
        let identity;
        try {
          identity = await new ApiClient(server, token).whoami();
        } catch (error) {
          if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
            throw new UserError(`${server} refused the token: ${error.message}`);
          }
          throw error;
        }
        const file = await saveLogin(process.env, { server, token });
        const grant = identity.cache === null ? 'server admin' : `${identity.permission} on cache ${identity.cache}`;
        print(flags, { server, ...identity }, () => [`logged in to ${server} with token ${identity.id} (${grant}); saved in ${file}`]);
      }),
    );

  withJsonOption(program.command('logout').description('forget the saved server and token (the token stays valid)')).action(
    async (flags: OutputFlags) => {
      const removed = await removeLogin(process.env);
      print(flags, { loggedOut: removed?.server ?? null }, () => [removed ? `logged out of ${removed.server}` : 'not logged in']);
    },
  );
}
