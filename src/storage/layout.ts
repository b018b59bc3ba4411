// Blob keys of the standard binary-cache layout, one prefix per cache.
// Callers pass validated parts (cache names, hash parts, nix32 file hashes).

import { narExtension, type Compression } from '../nix/compression.ts';

export const cacheInfoKey = (cache: string) => `${cache}/nix-cache-info`;
export const narInfoKey = (cache: string, hashPart: string) => `${cache}/${hashPart}.narinfo`;
export const listingKey = (cache: string, hashPart: string) => `${cache}/${hashPart}.ls`;
export const logKey = (cache: string, drvBase: string) => `${cache}/log/${drvBase}`;
/** The NAR's URL as a narinfo writes it, relative to the cache. */
export const narUrl = (fileHash: string, compression: Compression) => `nar/${fileHash}.nar${narExtension(compression)}`;
export const narKey = (cache: string, url: string) => `${cache}/${url}`;
