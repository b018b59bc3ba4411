// Asks one upstream binary cache for one store path's narinfo. Present means
// its narinfo is there, names that very path, and carries a signature by a key
// trusted for that upstream: exactly what a Nix client with those keys accepts.

import { validSigners } from '../nix/fingerprint.ts';
import { parseNarInfo, type NarInfo } from '../nix/narinfo.ts';
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
  /** Cancels the request early, e.g. once a better upstream has answered. */
  readonly signal?: AbortSignal;
}

/** A narinfo an upstream serves for the path, signed by a trusted key. */
export type UpstreamNarInfo = { readonly kind: 'present'; readonly info: NarInfo } | { readonly kind: 'absent' | 'failed' };

export async function askUpstream(
  url: string,
  trusted: ReadonlyMap<string, PublicKey>,
  hashPart: string,
  options: AskOptions,
): Promise<UpstreamAnswer> {
  const answer = await fetchUpstreamNarInfo(url, trusted, hashPart, options);
  return answer.kind;
}

export async function fetchUpstreamNarInfo(
  url: string,
  trusted: ReadonlyMap<string, PublicKey>,
  hashPart: string,
  options: AskOptions,
): Promise<UpstreamNarInfo> {
  let text: string | undefined;
  try {
    // The timeout covers the body too: a stalling upstream cannot hold a request.
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    const res = await fetch(`${url}/${hashPart}.narinfo`, { signal });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { kind: ABSENT_STATUSES.has(res.status) ? 'absent' : 'failed' };
    }
    text = await readLimited(res, MAX_NARINFO_BYTES);
  } catch {
    return { kind: 'failed' };
  }
  if (text === undefined) return { kind: 'absent' };
  try {
    const info = parseNarInfo(text, options.storeDir);
    if (info.storePath.hashPart !== hashPart) return { kind: 'absent' };
    return validSigners(info, trusted, options.storeDir).length > 0 ? { kind: 'present', info } : { kind: 'absent' };
  } catch {
    // Not a narinfo Nix would accept either.
    return { kind: 'absent' };
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
