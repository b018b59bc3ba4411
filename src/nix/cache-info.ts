// `nix-cache-info` (src/libstore/binary-cache-store.cc `BinaryCacheStore::init`):
// lines of `Key: value`; lines without a colon and unknown keys are ignored.

import { DEFAULT_STORE_DIR } from './store-path.ts';

export interface CacheInfo {
  readonly storeDir: string;
  readonly wantMassQuery: boolean;
  /** Lower is tried first; undefined leaves the client's default. */
  readonly priority?: number;
}

export function parseCacheInfo(text: string): CacheInfo {
  let storeDir = DEFAULT_STORE_DIR;
  let wantMassQuery = false;
  let priority: number | undefined;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key === 'StoreDir') storeDir = value;
    else if (key === 'WantMassQuery') wantMassQuery = value === '1';
    else if (key === 'Priority') {
      if (!/^-?[0-9]+$/.test(value)) throw new Error(`nix-cache-info: Priority '${value}' is not an integer`);
      priority = Number(value);
    }
  }
  return priority === undefined ? { storeDir, wantMassQuery } : { storeDir, wantMassQuery, priority };
}

export function formatCacheInfo(info: CacheInfo): string {
  let text = `StoreDir: ${info.storeDir}\nWantMassQuery: ${info.wantMassQuery ? 1 : 0}\n`;
  if (info.priority !== undefined) text += `Priority: ${info.priority}\n`;
  return text;
}
