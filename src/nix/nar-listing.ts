/**
 * NAR listings: the `<hash>.ls` JSON that `nix copy --to 'file://…?write-nar-listing=true'`
 * writes next to a NAR, so that clients can browse a path or fetch one file
 * (by `narOffset`) without downloading the whole archive.
 */
import type { NarPath, NarRegularFile, NarVisitor } from './nar-parser.ts';

export interface NarListing {
  readonly version: 1;
  readonly root: NarListingNode;
}

export type NarListingNode = NarListingDirectory | NarListingRegular | NarListingSymlink;

export interface NarListingDirectory {
  readonly type: 'directory';
  readonly entries: Record<string, NarListingNode>;
}

export interface NarListingRegular {
  readonly type: 'regular';
  readonly size: number;
  /** Present only when true, as Nix writes it. */
  readonly executable?: true;
  readonly narOffset: number;
}

export interface NarListingSymlink {
  readonly type: 'symlink';
  readonly target: string;
}

/**
 * Builds a listing from parser events. Names and targets that are not UTF-8
 * become U+FFFD-replaced strings: JSON cannot carry raw bytes (Nix 2.8 writes
 * them unescaped, making the file invalid UTF-8).
 */
export class NarListingBuilder implements NarVisitor {
  #root: NarListingNode | undefined;
  // Open directories, indexed by depth: entry events arrive in archive order.
  readonly #directories: NarListingDirectory[] = [];

  directory(path: NarPath): void {
    // A null prototype keeps a file called "__proto__" an ordinary entry.
    const node: NarListingDirectory = { type: 'directory', entries: Object.create(null) };
    this.#add(path, node);
    this.#directories[path.length] = node;
  }

  regular(path: NarPath, { executable, size, narOffset }: NarRegularFile): void {
    this.#add(path, executable ? { type: 'regular', size, executable, narOffset } : { type: 'regular', size, narOffset });
  }

  symlink(path: NarPath, target: Buffer): void {
    this.#add(path, { type: 'symlink', target: target.toString('utf8') });
  }

  /** The listing; only complete once the parser has reached the end of the archive. */
  get listing(): NarListing {
    if (this.#root === undefined) throw new Error('NAR listing is empty: no root node was parsed');
    return { version: 1, root: this.#root };
  }

  #add(path: NarPath, node: NarListingNode): void {
    const name = path.at(-1);
    const parent = this.#directories[path.length - 1];
    if (name === undefined) this.#root = node;
    else if (parent !== undefined) parent.entries[name.toString('utf8')] = node;
    else throw new Error('NAR listing: entry outside any directory');
  }
}

/**
 * Serialises a listing as Nix does: compact JSON, no trailing newline, entries
 * sorted bytewise (JSON.stringify alone would put names like "10" and "9"
 * first). For UTF-8 names this is byte-identical to Nix's `.ls` files.
 */
export function formatNarListing(listing: NarListing): string {
  return `{"version":${listing.version},"root":${formatNode(listing.root)}}`;
}

function formatNode(node: NarListingNode): string {
  if (node.type !== 'directory') return JSON.stringify(node);
  const names = Object.keys(node.entries).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const entries = names.map((name) => `${JSON.stringify(name)}:${formatNode(node.entries[name]!)}`);
  return `{"type":"directory","entries":{${entries.join(',')}}}`;
}
