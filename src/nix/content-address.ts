// The narinfo `CA` field (src/libstore/content-address.cc):
// `text:<hash>`, `fixed:<hash>`, `fixed:r:<hash>`, `fixed:git:<hash>`.

import { formatHash, parseHash, type Hash } from './hash.ts';

/** text: a text file (derivations); flat: a file's bytes; nar: a NAR; git: a git tree. */
export type ContentAddressMethod = 'text' | 'flat' | 'nar' | 'git';

export interface ContentAddress {
  readonly method: ContentAddressMethod;
  readonly hash: Hash;
}

const PREFIXES: ReadonlyArray<readonly [string, ContentAddressMethod]> = [
  ['text:', 'text'],
  ['fixed:r:', 'nar'],
  ['fixed:git:', 'git'],
  ['fixed:', 'flat'],
];

export function parseContentAddress(text: string): ContentAddress {
  for (const [prefix, method] of PREFIXES) {
    if (!text.startsWith(prefix)) continue;
    const hash = parseHash(text.slice(prefix.length));
    if (method === 'text' && hash.algorithm !== 'sha256') {
      throw new Error(`content address '${text}': text hashes must be sha256`);
    }
    return { method, hash };
  }
  throw new Error(`content address '${text}' must start with 'text:', 'fixed:', 'fixed:r:' or 'fixed:git:'`);
}

export function formatContentAddress(ca: ContentAddress): string {
  const prefix = PREFIXES.find(([, method]) => method === ca.method)![0];
  return prefix + formatHash(ca.hash);
}
