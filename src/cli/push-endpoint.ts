// What `larder push` and `larder watch` share: the cache they push to, with
// the token from --token, else $LARDER_TOKEN, else the login saved for that
// very server; and the flag checks and error wording of both.

import { NixCommandError } from '../client/local-nix.ts';
import { CacheEndpoint, parseCacheUrl, ServerRefusal, ServerUnavailable } from '../client/push/cache-endpoint.ts';
import { loadLogin } from './credentials-store.ts';
import { UserError } from './user-error.ts';

export function positiveInt(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UserError(`--${name}: expected a whole number from 1 to ${max}, got '${value}'`);
  return n;
}

export async function pushEndpoint(cacheUrl: string, tokenFlag: string | undefined, jobs: number): Promise<CacheEndpoint> {
  let location;
  try {
    location = parseCacheUrl(cacheUrl);
  } catch (error) {
    throw new UserError((error as Error).message);
  }
  const login = await loadLogin(process.env);
  const token = tokenFlag ?? process.env.LARDER_TOKEN ?? (login?.server === location.server ? login.token : undefined);
  return new CacheEndpoint(location, { token, connections: jobs + 2, attempts: 6, backoffMs: 500 });
}

/** The server's refusal or absence, or nix's complaint, as one line for the user; anything else (a UserError too) as it is. */
export function asUserError(error: unknown, suffix = ''): unknown {
  if (error instanceof ServerRefusal || error instanceof ServerUnavailable || error instanceof NixCommandError) {
    return new UserError(`${error.message}${suffix}`);
  }
  return error;
}
