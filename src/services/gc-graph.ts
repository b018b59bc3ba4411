// Loads a cache from the index into the planner's compact graph (gc-plan.ts):
// paths and references are read in pages (keyset pagination), so memory holds
// typed arrays, never a row object per path. Hash parts are kept packed, 32
// bytes each, in the order the index lists them, and found by binary search.

import type { CacheIndex, PinRecord } from '../index/cache-index.ts';
import type { PathGraph } from './gc-plan.ts';

const HASH_LENGTH = 32;
// Rows per query: larger pages save round trips but keep more row objects alive at once.
const PAGE = 2000;

/** The hash parts of a graph's paths, by id: 32 ASCII bytes each. */
export class HashParts {
  readonly count: number;
  readonly #packed: Uint8Array;
  /** The same bytes, as a Buffer to decode from. */
  readonly #text: Buffer;
  /** Ids in ascending hash-part order, when the load order was not (never, with any sane collation). */
  readonly #sorted: Int32Array | undefined;

  constructor(packed: Uint8Array, count: number, loadedInOrder: boolean) {
    this.#packed = packed;
    this.#text = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
    this.count = count;
    this.#sorted = loadedInOrder ? undefined : Int32Array.from({ length: count }, (_, i) => i).sort((a, b) => this.#compareIds(a, b));
  }

  at(id: number): string {
    // One flat string (concatenating characters would build a rope of 32 pieces).
    return this.#text.toString('latin1', id * HASH_LENGTH, (id + 1) * HASH_LENGTH);
  }

  /** The id of a hash part, or -1. */
  find(hashPart: string): number {
    if (hashPart.length !== HASH_LENGTH) return -1;
    let low = 0;
    let high = this.count - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const id = this.#sorted ? this.#sorted[mid]! : mid;
      const order = this.#compareTo(id, hashPart);
      if (order === 0) return id;
      if (order < 0) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }

  /** Packed hash part `id` against `text`, by character code. */
  #compareTo(id: number, text: string): number {
    const base = id * HASH_LENGTH;
    for (let i = 0; i < HASH_LENGTH; i++) {
      const d = this.#packed[base + i]! - text.charCodeAt(i);
      if (d !== 0) return d;
    }
    return 0;
  }

  #compareIds(a: number, b: number): number {
    for (let i = 0; i < HASH_LENGTH; i++) {
      const d = this.#packed[a * HASH_LENGTH + i]! - this.#packed[b * HASH_LENGTH + i]!;
      if (d !== 0) return d;
    }
    return 0;
  }
}

export interface LoadedGraph {
  readonly graph: PathGraph;
  readonly hashParts: HashParts;
  /** The pins, in the order of graph.pins. */
  readonly pins: readonly PinRecord[];
}

/** Typed-array growth by doubling; `view()` is the filled part. */
class Growable<T extends Float64Array | Int32Array | Uint8Array> {
  #array: T;
  length = 0;
  readonly #make: (size: number) => T;
  constructor(make: (size: number) => T, initial = 1024) {
    this.#make = make;
    this.#array = make(initial);
  }
  reserve(extra: number): T {
    if (this.length + extra > this.#array.length) {
      const bigger = this.#make(Math.max(this.#array.length * 2, this.length + extra));
      bigger.set(this.#array.subarray(0, this.length) as never);
      this.#array = bigger;
    }
    return this.#array;
  }
  push(value: number): void {
    this.reserve(1)[this.length++] = value;
  }
  /** The filled part, copied to a right-sized array so that the spare capacity is freed. */
  done(): T {
    return this.#array.slice(0, this.length) as T;
  }
}

/** Reads a cache's paths, references and pins into a PathGraph. */
export async function loadPathGraph(index: CacheIndex, cache: string, pageSize = PAGE): Promise<LoadedGraph> {
  const shared = new Set(await index.sharedNars(cache));
  const sharedIds = new Map<string, number>();
  const packed = new Growable((n) => new Uint8Array(n), 64 * HASH_LENGTH);
  const accessedAt = new Growable((n) => new Float64Array(n));
  const nar = new Growable((n) => new Int32Array(n));
  const narBytes = new Growable((n) => new Float64Array(n));
  let inOrder = true;
  let previous = '';
  let count = 0;
  for (let after = ''; ; ) {
    const page = await index.pathFactsPage(cache, after, pageSize);
    for (const row of page) {
      if (row.hashPart.length !== HASH_LENGTH) throw new Error(`index path ${row.hashPart} is not a 32-character hash part`);
      if (row.hashPart <= previous) inOrder = false;
      previous = row.hashPart;
      const bytes = packed.reserve(HASH_LENGTH);
      for (let i = 0; i < HASH_LENGTH; i++) bytes[packed.length++] = row.hashPart.charCodeAt(i);
      accessedAt.push(row.accessedAt);
      let id = shared.has(row.fileHash) ? sharedIds.get(row.fileHash) : undefined;
      if (id === undefined) {
        id = narBytes.length;
        narBytes.push(row.fileSize);
        if (shared.has(row.fileHash)) sharedIds.set(row.fileHash, id);
      }
      nar.push(id);
      count++;
    }
    if (page.length < pageSize) break;
    after = page.at(-1)!.hashPart;
  }
  const hashParts = new HashParts(packed.done(), count, inOrder);

  // References come ordered by the referrer's hash part, the order ids were given in: the
  // compressed rows fill in one pass. Rows naming paths not loaded (pushed since, or served by an
  // upstream) are left out; the deletion re-checks referrers in its own transaction anyway.
  const refStart = new Uint32Array(count + 1);
  const targets = new Growable((n) => new Int32Array(n));
  let current = -1;
  let lastSource = '';
  let lastSourceId = -1;
  for (let after: { hashPart: string; refHashPart: string } | undefined; ; ) {
    const page = await index.referencesPage(cache, after, pageSize);
    for (const row of page) {
      const source = row.hashPart === lastSource ? lastSourceId : hashParts.find(row.hashPart);
      lastSource = row.hashPart;
      lastSourceId = source;
      if (source < 0) continue;
      if (source < current) {
        // Only if the index listed references and paths in different orders.
        throw new Error(`references of ${row.hashPart} came out of order`);
      }
      while (current < source) refStart[++current] = targets.length;
      const target = hashParts.find(row.refHashPart);
      if (target >= 0 && target !== source) targets.push(target);
    }
    if (page.length < pageSize) break;
    after = page.at(-1)!;
  }
  while (current < count) refStart[++current] = targets.length;

  const pins = await index.listPins(cache);
  return {
    graph: {
      count,
      accessedAt: accessedAt.done(),
      nar: nar.done(),
      narBytes: narBytes.done(),
      refStart,
      refTargets: targets.done(),
      pins: pins.map((pin) => ({ name: pin.name, path: hashParts.find(pin.hashPart) })),
    },
    hashParts,
    pins,
  };
}
