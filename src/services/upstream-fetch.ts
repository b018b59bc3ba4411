// Asks one upstream binary cache whether it holds one store path. Present means
// its narinfo is there, names that very path, and carries a signature by a key
// trusted for that upstream: exactly what a Nix client with those keys accepts.

import { validSigners } from '../nix/fingerprint.ts';
import { parseNarInfo } from '../nix/narinfo.ts';
import type { PublicKey } from '../nix/signing-key.ts';

/** failed: no clear answer (timeout, network, 5xx); it must not be remembered. */
export type UpstreamAnswer = 'present' | 'absent' | 'failed';

/** Nix's own reading: 403 is what S3 answers for a missing key when listing is not allowed. */
const ABSENT_STATUSES = new Set([403, 404, 410]);
/** Far above any real narinfo (a few KiB even with thousands of references). */
const MAX_NARINFO_BYTES = 1024 * 1024;

export interface AskOptions {
  readonly storeDir: string;
  readonly timeoutMs: number;
}

export async function askUpstream(
  url: string,
  trusted: ReadonlyMap<string, PublicKey>,
  hashPart: string,
  options: AskOptions,
): Promise<UpstreamAnswer> {
  let text: string | undefined;
  try {
    // The timeout covers the body too: a stalling upstream cannot hold an upload.
    const res = await fetch(`${url}/${hashPart}.narinfo`, { signal: AbortSignal.timeout(options.timeoutMs) });
    if (res.status !== 200) {
      await res.body?.cancel();
      return ABSENT_STATUSES.has(res.status) ? 'absent' : 'failed';
    }
    text = await readLimited(res, MAX_NARINFO_BYTES);
  } catch {
    return 'failed';
  }
  if (text === undefined) return 'absent';
  try {
    const info = parseNarInfo(text, options.storeDir);
    if (info.storePath.hashPart !== hashPart) return 'absent';
    return validSigners(info, trusted, options.storeDir).length > 0 ? 'present' : 'absent';
  } catch {
    // Not a narinfo Nix would accept either.
    return 'absent';
  }
}

/** The body as text, or undefined once it grows past `limit`. */
async function readLimited(res: Response, limit: number): Promise<string | undefined> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.length;
    // Leaving the loop cancels the rest of the body.
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
