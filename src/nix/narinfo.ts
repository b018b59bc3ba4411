// The `.narinfo` format (src/libstore/nar-info.cc). The parser accepts what
// Nix's parser accepts and refuses, with a message naming the line and field,
// what Nix would silently misread (`NarSize:120` is 20 to Nix) or reject.
// The serializer writes Nix's field order byte for byte.

import { formatContentAddress, parseContentAddress, type ContentAddress } from './content-address.ts';
import { formatHash, parseHash, type Hash } from './hash.ts';
import { parseSignature } from './signature.ts';
import {
  DEFAULT_STORE_DIR,
  parseStorePath,
  parseStorePathBase,
  printStorePath,
  storePathBase,
  type StorePath,
} from './store-path.ts';

export interface NarInfo {
  readonly storePath: StorePath;
  /** Where the (compressed) NAR is, relative to the cache: `nar/<filehash>.nar.zst`. */
  readonly url: string;
  readonly compression: string;
  readonly fileHash?: Hash;
  readonly fileSize?: number;
  readonly narHash: Hash;
  readonly narSize: number;
  /** Sorted bytewise by basename when serialized, as Nix does. */
  readonly references: readonly StorePath[];
  readonly deriver?: StorePath;
  /** Obsolete since Nix 2.10; kept so narinfos round-trip. */
  readonly system?: string;
  /** `keyname:base64`, a set: serialized sorted and de-duplicated. */
  readonly sigs: readonly string[];
  readonly ca?: ContentAddress;
}

export class NarInfoError extends Error {
  readonly line: number | undefined;
  readonly field: string | undefined;
  constructor(line: number | undefined, field: string | undefined, problem: string) {
    const where = [line === undefined ? '' : `line ${line}`, field === undefined ? '' : `field ${field}`]
      .filter(Boolean)
      .join(', ');
    super(where ? `${where}: ${problem}` : problem);
    this.name = 'NarInfoError';
    this.line = line;
    this.field = field;
  }
}

const DECIMAL = /^[0-9]+$/;
export const UNKNOWN_DERIVER = 'unknown-deriver';

function parseSize(value: string): number {
  if (!DECIMAL.test(value)) throw new Error(`expected a decimal number, got '${value}'`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`number '${value}' is too large`);
  return n;
}

interface Draft {
  storePath?: StorePath;
  url?: string;
  compression?: string;
  fileHash?: Hash;
  fileSize?: number;
  narHash?: Hash;
  narSize?: number;
  references: StorePath[];
  deriver?: StorePath;
  system?: string;
  sigs: string[];
  ca?: ContentAddress;
}

export function parseNarInfo(text: string, storeDir = DEFAULT_STORE_DIR): NarInfo {
  if (text.length === 0) throw new NarInfoError(undefined, undefined, 'narinfo is empty');
  if (!text.endsWith('\n')) {
    throw new NarInfoError(text.split('\n').length, undefined, 'expected a newline at the end of the last line');
  }
  const draft: Draft = { references: [], sigs: [] };
  const lines = text.slice(0, -1).split('\n');
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const line = lines[index]!;
    if (line.includes('\r')) throw new NarInfoError(lineNumber, undefined, 'carriage return found; lines must end in a bare LF');
    if (line.includes('\0')) throw new NarInfoError(lineNumber, undefined, 'NUL byte found; a narinfo is text');
    const colon = line.indexOf(':');
    if (colon <= 0) throw new NarInfoError(lineNumber, undefined, `expected 'Key: value', got '${line}'`);
    const key = line.slice(0, colon);
    if (line[colon + 1] !== ' ') {
      throw new NarInfoError(lineNumber, key, "expected exactly one space after the colon");
    }
    const value = line.slice(colon + 2);
    try {
      applyField(draft, key, value, storeDir);
    } catch (error) {
      if (error instanceof NarInfoError) throw error;
      throw new NarInfoError(lineNumber, key, (error as Error).message);
    }
  }
  return complete(draft);
}

function applyField(draft: Draft, key: string, value: string, storeDir: string): void {
  switch (key) {
    case 'StorePath':
      draft.storePath = parseStorePath(value, storeDir);
      return;
    case 'URL':
      if (value === '') throw new Error('expected the NAR location, got an empty value');
      draft.url = value;
      return;
    case 'Compression':
      draft.compression = value;
      return;
    case 'FileHash':
      draft.fileHash = parseHash(value);
      return;
    case 'FileSize':
      draft.fileSize = parseSize(value);
      return;
    case 'NarHash':
      draft.narHash = parseHash(value);
      return;
    case 'NarSize':
      draft.narSize = parseSize(value);
      return;
    case 'References':
      // Nix refuses a second non-empty References line once it has some.
      if (draft.references.length > 0) throw new Error('References given twice');
      draft.references = value === '' ? [] : value.split(' ').map((ref) => {
        if (ref === '') throw new Error('expected references separated by single spaces');
        return parseStorePathBase(ref);
      });
      return;
    case 'Deriver':
      if (value === UNKNOWN_DERIVER) delete draft.deriver;
      else draft.deriver = parseStorePathBase(value);
      return;
    case 'System':
      draft.system = value;
      return;
    case 'Sig':
      parseSignature(value);
      draft.sigs.push(value);
      return;
    case 'CA':
      if (draft.ca) throw new Error('CA given twice');
      if (value !== '') draft.ca = parseContentAddress(value);
      return;
    default:
      return; // Unknown keys are ignored, as Nix does, so newer fields pass through older readers.
  }
}

function complete(draft: Draft): NarInfo {
  const missing = (field: string) => new NarInfoError(undefined, field, 'missing; it is required');
  if (!draft.storePath) throw missing('StorePath');
  if (draft.url === undefined) throw missing('URL');
  if (!draft.narHash) throw missing('NarHash');
  if (draft.narSize === undefined) throw missing('NarSize');
  if (draft.narSize === 0) throw new NarInfoError(undefined, 'NarSize', 'must not be 0');
  return {
    storePath: draft.storePath,
    url: draft.url,
    // Nix reads a missing Compression as bzip2, for the oldest caches.
    compression: draft.compression || 'bzip2',
    ...(draft.fileHash && { fileHash: draft.fileHash }),
    ...(draft.fileSize !== undefined && { fileSize: draft.fileSize }),
    narHash: draft.narHash,
    narSize: draft.narSize,
    references: draft.references,
    ...(draft.deriver && { deriver: draft.deriver }),
    ...(draft.system !== undefined && { system: draft.system }),
    sigs: draft.sigs,
    ...(draft.ca && { ca: draft.ca }),
  };
}

function byBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Reference basenames in Nix's order (bytewise). */
export function sortedReferenceBases(info: Pick<NarInfo, 'references'>): string[] {
  return [...new Set(info.references.map(storePathBase))].sort(byBytes);
}

export function formatNarInfo(info: NarInfo, storeDir = DEFAULT_STORE_DIR): string {
  let text = `StorePath: ${printStorePath(info.storePath, storeDir)}\n`;
  text += `URL: ${info.url}\n`;
  text += `Compression: ${info.compression}\n`;
  if (info.fileHash) text += `FileHash: ${formatHash(info.fileHash)}\n`;
  if (info.fileSize !== undefined) text += `FileSize: ${info.fileSize}\n`;
  text += `NarHash: ${formatHash(info.narHash)}\n`;
  text += `NarSize: ${info.narSize}\n`;
  text += `References: ${sortedReferenceBases(info).join(' ')}\n`;
  if (info.deriver) text += `Deriver: ${storePathBase(info.deriver)}\n`;
  if (info.system !== undefined && info.system !== '') text += `System: ${info.system}\n`;
  for (const sig of [...new Set(info.sigs)].sort(byBytes)) text += `Sig: ${sig}\n`;
  if (info.ca) text += `CA: ${formatContentAddress(info.ca)}\n`;
  return text;
}
