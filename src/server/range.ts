// The Range header for downloads (RFC 9110 §14): one byte range, which is what
// curl asks for when Nix resumes a download. Several ranges are answered with
// the whole body, which the RFC allows.

import type { BlobRange } from '../storage/blob-store.ts';

export type RangeRequest = { kind: 'whole' } | { kind: 'range'; range: BlobRange } | { kind: 'unsatisfiable' };

const SINGLE = /^bytes=(\d*)-(\d*)$/;

export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'whole' };
  const match = SINGLE.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return { kind: 'whole' };
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return { kind: 'unsatisfiable' };
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (end < start && match[2] !== '') return { kind: 'whole' };
  }
  if (start >= size || !Number.isSafeInteger(start)) return { kind: 'unsatisfiable' };
  return { kind: 'range', range: { start, end } };
}
