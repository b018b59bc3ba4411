// What larder serves for a path it found upstream: the upstream's narinfo with
// its URL pointing at larder's own copy (`nar/<FileHash>.nar.xz`), its
// signatures kept. The NAR is named by the upstream's FileHash, so the name
// alone lets larder check the bytes it fetches.

import { isCompression, narExtension } from '../../nix/compression.ts';
import type { NarInfo } from '../../nix/narinfo.ts';
import { encodeNix32 } from '../../nix/nix32.ts';

export interface MirrorPlan {
  /** larder's NAR file name: `<nix32 FileHash>.nar<ext>`. */
  readonly fileName: string;
  /** Where the upstream serves the NAR. */
  readonly narUrl: string;
  /** The upstream's narinfo with larder's URL. */
  readonly narinfo: NarInfo;
}

/**
 * The plan to mirror `info` from the upstream at `upstreamUrl`, or why it cannot be mirrored.
 * The URL field is not covered by signatures, so it must stay under the upstream: a relative
 * path without `..`, never another host (which would let a forged narinfo make larder fetch
 * from anywhere).
 */
export function planMirror(upstreamUrl: string, info: NarInfo): MirrorPlan | { readonly refused: string } {
  if (!isCompression(info.compression)) return { refused: `Compression '${info.compression}' is not supported` };
  if (info.fileHash?.algorithm !== 'sha256') return { refused: 'FileHash is missing or not sha256' };
  const segments = info.url.split('/');
  if (
    info.url === '' ||
    /^[a-z][a-z0-9+.-]*:/i.test(info.url) ||
    info.url.startsWith('/') ||
    /[?#\\%]/.test(info.url) ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    return { refused: `URL '${info.url}' is not a plain path under the upstream` };
  }
  const fileName = `${encodeNix32(info.fileHash.digest)}.nar${narExtension(info.compression)}`;
  return { fileName, narUrl: `${upstreamUrl}/${info.url}`, narinfo: { ...info, url: `nar/${fileName}` } };
}
