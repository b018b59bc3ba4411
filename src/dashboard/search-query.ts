// What the search box means: a whole store path or hash names one path; text
// made only of nix32 letters may be the start of a hash or part of a name;
// anything else is part of a name. Pure, so every case is tested alone.

import { NIX32_ALPHABET } from '../nix/nix32.ts';
import { HASH_PART_LENGTH, isHashPart } from '../nix/store-path.ts';

export const MAX_QUERY_LENGTH = 200;

export type SearchQuery =
  | { readonly kind: 'empty' }
  | { readonly kind: 'invalid'; readonly problem: string }
  /** A whole hash part: one path, if the cache has it. */
  | { readonly kind: 'exact'; readonly hashPart: string }
  | { readonly kind: 'match'; readonly hashPrefix?: string; readonly nameNeedle: string };

const NIX32 = new RegExp(`^[${NIX32_ALPHABET}]+$`);

export function parseSearchQuery(input: string | null | undefined, storeDir: string): SearchQuery {
  let text = (input ?? '').trim();
  if (text === '') return { kind: 'empty' };
  if (text.length > MAX_QUERY_LENGTH) return { kind: 'invalid', problem: `the search is ${text.length} characters long; at most ${MAX_QUERY_LENGTH} are allowed` };
  if (/[\u0000-\u001f\u007f]/.test(text)) return { kind: 'invalid', problem: 'the search contains control characters' };
  if (text.startsWith(`${storeDir}/`)) text = text.slice(storeDir.length + 1).split('/', 1)[0]!;
  const head = text.slice(0, HASH_PART_LENGTH);
  if (isHashPart(head) && (text.length === HASH_PART_LENGTH || text[HASH_PART_LENGTH] === '-')) return { kind: 'exact', hashPart: head };
  const lower = text.toLowerCase();
  if (text.length < HASH_PART_LENGTH && NIX32.test(text)) return { kind: 'match', hashPrefix: text, nameNeedle: lower };
  return { kind: 'match', nameNeedle: lower };
}
