// A store path as a command-line argument: `/nix/store/<hash>-<name>` as is,
// or something that leads to one (`./result`), resolved here.

import { realpath } from 'node:fs/promises';
import { UserError } from './user-error.ts';

const STORE_PATH = /^\/.*\/[0-9a-z]{32}-[^/]+$/;

/** The full store path `arg` names; the server checks it against its store directory. */
export async function storePathArgument(arg: string): Promise<string> {
  if (STORE_PATH.test(arg)) return arg;
  try {
    const resolved = await realpath(arg);
    if (STORE_PATH.test(resolved)) return resolved;
  } catch {
    // not a local path: said below
  }
  throw new UserError(`'${arg}' is not a store path (/nix/store/<hash>-<name>), nor a link to one`);
}
