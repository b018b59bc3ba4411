// Store path syntax as a server can check it without a store
// (src/libstore/path.cc): `<storeDir>/<32 nix32 chars>-<name>`.

import { isNix32 } from './nix32.ts';

export const DEFAULT_STORE_DIR = '/nix/store';
export const HASH_PART_LENGTH = 32;
const NAME_MAX = 211;
const NAME_CHARS = /^[A-Za-z0-9+\-._?=]+$/;

export interface StorePath {
  /** The 32-character nix32 hash part. */
  readonly hashPart: string;
  readonly name: string;
}

export function isHashPart(text: string): boolean {
  return text.length === HASH_PART_LENGTH && isNix32(text);
}

/** Why `name` is not a valid store path name, or undefined if it is. */
export function storePathNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'name is empty';
  if (name.length > NAME_MAX) return `name is longer than ${NAME_MAX} characters`;
  if (!NAME_CHARS.test(name)) return `name '${name}' has a character outside [A-Za-z0-9+-._?=]`;
  if (name === '.' || name === '..' || name.startsWith('.-') || name.startsWith('..-')) {
    return `name '${name}' is reserved`;
  }
  return undefined;
}

/** Parses a basename `<hash>-<name>`. */
export function parseStorePathBase(base: string): StorePath {
  const hashPart = base.slice(0, HASH_PART_LENGTH);
  if (!isHashPart(hashPart) || base[HASH_PART_LENGTH] !== '-') {
    throw new Error(`'${base}' is not a store path basename: expected 32 nix32 characters, '-', a name`);
  }
  const name = base.slice(HASH_PART_LENGTH + 1);
  const problem = storePathNameProblem(name);
  if (problem) throw new Error(`store path '${base}': ${problem}`);
  return { hashPart, name };
}

/** Parses a full path `<storeDir>/<hash>-<name>`. */
export function parseStorePath(path: string, storeDir = DEFAULT_STORE_DIR): StorePath {
  const prefix = storeDir + '/';
  if (!path.startsWith(prefix)) throw new Error(`'${path}' is not in the store directory ${storeDir}`);
  const base = path.slice(prefix.length);
  if (base.includes('/')) throw new Error(`'${path}' is not a store path but a file inside one`);
  return parseStorePathBase(base);
}

export function storePathBase(path: StorePath): string {
  return `${path.hashPart}-${path.name}`;
}

export function printStorePath(path: StorePath, storeDir = DEFAULT_STORE_DIR): string {
  return `${storeDir}/${storePathBase(path)}`;
}
