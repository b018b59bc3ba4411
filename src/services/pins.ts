// Pins: a named path whose whole closure garbage collection keeps, whatever
// its age. Setting a pin of an existing name moves it (what `larder push --pin`
// does after each push); the path must be in the cache.

import { IndexPreconditionError, type CacheIndex, type PinRecord } from '../index/cache-index.ts';
import { parseStorePath } from '../nix/store-path.ts';
import { Rejection } from './rejection.ts';

export interface PinContext {
  readonly index: CacheIndex;
  readonly storeDir: string;
  readonly now: () => number;
}

const PIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+@=-]{0,127}$/;

export function pinNameProblem(name: string): string | undefined {
  return PIN_NAME.test(name) ? undefined : `pin name '${name}': expected 1-128 of A-Z a-z 0-9 . _ + @ = -, starting with a letter or digit`;
}

/** Sets pin `name` of `cache` to `storePath` (a full store path), replacing a pin of that name. */
export async function setPin(ctx: PinContext, cache: string, name: string, storePath: string): Promise<PinRecord> {
  const problem = pinNameProblem(name);
  if (problem) throw new Rejection('invalid', problem);
  let hashPart: string;
  try {
    hashPart = parseStorePath(storePath, ctx.storeDir).hashPart;
  } catch (error) {
    throw new Rejection('invalid', `storePath: ${(error as Error).message}`);
  }
  try {
    return await ctx.index.putPin(cache, name, hashPart, ctx.now());
  } catch (error) {
    if (error instanceof IndexPreconditionError) throw new Rejection('conflict', `${storePath} is not in cache '${cache}'; push it first`);
    throw error;
  }
}

export async function deletePin(ctx: Pick<PinContext, 'index'>, cache: string, name: string): Promise<void> {
  if (!(await ctx.index.deletePin(cache, name))) throw new Rejection('not-found', `cache '${cache}' has no pin '${name}'`);
}
