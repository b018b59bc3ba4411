// Garbage collection planning: which paths of a cache stay and which go. Pure
// (no I/O) and compact: the cache is a graph of numeric ids in typed arrays,
// so that planning over a million paths takes a second or two and a hundred
// or so MiB.
//
// The closure rule: a path is live if it is pinned, or recent (accessed within
// the retention period; every path is when the cache has none), or referred to
// by a live path. Everything else is dead. Then the quota: while the NARs of
// the live paths take more than max-size bytes, the least recently used live
// paths that no pin keeps are evicted, a path only ever after everything live
// that refers to it, so a closure is never broken. The deletion order lists
// the dead paths each after every dead path that refers to it.

/** A cache as garbage collection sees it. Paths are ids 0 … count-1. */
export interface PathGraph {
  readonly count: number;
  /** Each path's last access (its creation counting as one), ms. */
  readonly accessedAt: Float64Array;
  /** Each path's NAR: an index into narBytes, or -1 when it has none. Paths may share a NAR. */
  readonly nar: Int32Array;
  /** The stored size of each NAR, bytes. */
  readonly narBytes: Float64Array;
  /**
   * References in compressed-row form: path i refers to refTargets[refStart[i]] up to (not
   * including) refTargets[refStart[i + 1]]. Self-references and duplicates are harmless.
   */
  readonly refStart: Uint32Array;
  readonly refTargets: Int32Array;
  /** Pins by name; several may name one path. */
  readonly pins: readonly { readonly name: string; readonly path: number }[];
}

export interface PlanPolicy {
  /** Paths accessed at or after this time (ms) are recent; null: every path is (no retention). */
  readonly keepAccessedSince: number | null;
  /** Bytes the live paths' NARs may take; null: no quota. */
  readonly maxSize: number | null;
}

/** Why a path stays or goes. */
export const Fate = {
  /** Named by a pin. */
  pinned: 1,
  /** Accessed within the retention period. */
  recent: 2,
  /** Kept because the cache has no retention period. */
  unlimited: 3,
  /** Referred to by a kept path. */
  referenced: 4,
  /** Not accessed within the retention period, and nothing kept refers to it. */
  expired: 5,
  /** Evicted to bring the cache under its max-size, least recently used first. */
  evicted: 6,
} as const;
export type Fate = (typeof Fate)[keyof typeof Fate];

export function isKept(fate: number): boolean {
  return fate >= Fate.pinned && fate <= Fate.referenced;
}

export interface QuotaOutcome {
  readonly maxSize: number;
  /** Bytes of the paths the retention rule keeps, before eviction. */
  readonly bytesBefore: number;
  /** Bytes kept after eviction. */
  readonly bytesAfter: number;
  /** Bytes of the pinned closures, which can never be evicted. */
  readonly pinnedBytes: number;
  readonly evictedPaths: number;
  /** Whether the kept paths fit under max-size. */
  readonly reached: boolean;
}

export interface GcPlan {
  /** Each path's Fate. */
  readonly fate: Uint8Array;
  /**
   * For a referenced path, the id of a kept path referring to it (the first the walk found);
   * for a pinned path, the index of its first pin in graph.pins; -1 otherwise.
   */
  readonly keptBy: Int32Array;
  /** The dead paths (expired and evicted), each after every dead path that refers to it. */
  readonly deletionOrder: Int32Array;
  /** Bytes of all the NARs the paths use. */
  readonly totalBytes: number;
  /** Bytes of the NARs kept paths use. */
  readonly keptBytes: number;
  /** Bytes of the NARs only dead paths use: what deleting them frees. */
  readonly freedBytes: number;
  /** Of freedBytes, what the retention rule frees; the rest is the quota's. */
  readonly expiredBytes: number;
  readonly quota: QuotaOutcome | null;
}

export function planGc(graph: PathGraph, policy: PlanPolicy): GcPlan {
  const n = graph.count;
  const { refStart, refTargets } = graph;
  const fate = new Uint8Array(n);
  const keptBy = new Int32Array(n).fill(-1);
  const queue = new Int32Array(n);
  let head = 0;
  let tail = 0;

  // Breadth-first from the queued roots: whatever they refer to is kept too.
  const walk = () => {
    while (head < tail) {
      const u = queue[head++]!;
      for (let e = refStart[u]!, end = refStart[u + 1]!; e < end; e++) {
        const t = refTargets[e]!;
        if (fate[t] === 0) {
          fate[t] = Fate.referenced;
          keptBy[t] = u;
          queue[tail++] = t;
        }
      }
    }
  };

  // Pinned closures first: the quota may never touch them.
  graph.pins.forEach((pin, index) => {
    if (pin.path < 0 || pin.path >= n || fate[pin.path] !== 0) return;
    fate[pin.path] = Fate.pinned;
    keptBy[pin.path] = index;
    queue[tail++] = pin.path;
  });
  walk();
  const pinnedEnd = tail;
  const protectedPaths = new Uint8Array(n);
  for (let i = 0; i < pinnedEnd; i++) protectedPaths[queue[i]!] = 1;

  const since = policy.keepAccessedSince;
  for (let p = 0; p < n; p++) {
    if (fate[p] !== 0) continue;
    if (since === null) fate[p] = Fate.unlimited;
    else if (graph.accessedAt[p]! >= since) fate[p] = Fate.recent;
    else continue;
    queue[tail++] = p;
  }
  walk();
  for (let p = 0; p < n; p++) if (fate[p] === 0) fate[p] = Fate.expired;

  // Bytes per NAR, counted once however many paths share it.
  const narCount = graph.narBytes.length;
  const liveUses = new Int32Array(narCount);
  const used = new Uint8Array(narCount);
  for (let p = 0; p < n; p++) {
    const nar = graph.nar[p]!;
    if (nar < 0) continue;
    used[nar] = 1;
    if (isKept(fate[p]!)) liveUses[nar]!++;
  }
  let totalBytes = 0;
  let keptBytes = 0;
  for (let k = 0; k < narCount; k++) {
    if (used[k]) totalBytes += graph.narBytes[k]!;
    if (liveUses[k]! > 0) keptBytes += graph.narBytes[k]!;
  }
  const retainedBytes = keptBytes;

  let quota: QuotaOutcome | null = null;
  if (policy.maxSize !== null) {
    let evictedPaths = 0;
    if (keptBytes > policy.maxSize) {
      for (const p of evictionOrder(graph, fate, protectedPaths)) {
        if (keptBytes <= policy.maxSize) break;
        fate[p] = Fate.evicted;
        keptBy[p] = -1;
        evictedPaths++;
        const nar = graph.nar[p]!;
        if (nar >= 0 && --liveUses[nar]! === 0) keptBytes -= graph.narBytes[nar]!;
      }
    }
    let pinnedBytes = 0;
    const counted = new Uint8Array(narCount);
    for (let i = 0; i < pinnedEnd; i++) {
      const nar = graph.nar[queue[i]!]!;
      if (nar >= 0 && !counted[nar]) {
        counted[nar] = 1;
        pinnedBytes += graph.narBytes[nar]!;
      }
    }
    quota = {
      maxSize: policy.maxSize,
      bytesBefore: retainedBytes,
      bytesAfter: keptBytes,
      pinnedBytes,
      evictedPaths,
      reached: keptBytes <= policy.maxSize,
    };
  }

  return {
    fate,
    keptBy,
    deletionOrder: deletionOrder(graph, fate),
    totalBytes,
    keptBytes,
    freedBytes: totalBytes - keptBytes,
    expiredBytes: totalBytes - retainedBytes,
    quota,
  };
}

/**
 * The kept paths no pin keeps, in the order the quota may evict them: by their effective last
 * access (their own, or that of the most recent kept path that refers to them, transitively,
 * whichever is later) and, among equals, every referrer before what it refers to. Paths on a
 * reference cycle, and what they refer to, never come up: they are kept.
 */
function evictionOrder(graph: PathGraph, fate: Uint8Array, protectedPaths: Uint8Array): Int32Array {
  const n = graph.count;
  const { refStart, refTargets } = graph;
  const candidate = (p: number) => isKept(fate[p]!) && protectedPaths[p] === 0;
  const indegree = new Int32Array(n);
  for (let u = 0; u < n; u++) {
    if (!candidate(u)) continue;
    for (let e = refStart[u]!, end = refStart[u + 1]!; e < end; e++) {
      const t = refTargets[e]!;
      if (t !== u && candidate(t)) indegree[t]!++;
    }
  }
  const effective = Float64Array.from(graph.accessedAt);
  const order = new Int32Array(n);
  let size = 0;
  for (let p = 0; p < n; p++) if (candidate(p) && indegree[p] === 0) order[size++] = p;
  for (let i = 0; i < size; i++) {
    const u = order[i]!;
    for (let e = refStart[u]!, end = refStart[u + 1]!; e < end; e++) {
      const t = refTargets[e]!;
      if (t === u || !candidate(t)) continue;
      if (effective[u]! > effective[t]!) effective[t] = effective[u]!;
      if (--indegree[t]! === 0) order[size++] = t;
    }
  }
  const topological = order.subarray(0, size);
  const position = new Int32Array(n);
  topological.forEach((p, i) => (position[p] = i));
  return Int32Array.from(topological).sort((a, b) => effective[a]! - effective[b]! || position[a]! - position[b]!);
}

/** Dead paths, referrers first (Kahn's algorithm over the dead ones); cycles last, in id order. */
function deletionOrder(graph: PathGraph, fate: Uint8Array): Int32Array {
  const n = graph.count;
  const { refStart, refTargets } = graph;
  const dead = (p: number) => fate[p] === Fate.expired || fate[p] === Fate.evicted;
  const indegree = new Int32Array(n);
  let total = 0;
  for (let u = 0; u < n; u++) {
    if (!dead(u)) continue;
    total++;
    for (let e = refStart[u]!, end = refStart[u + 1]!; e < end; e++) {
      const t = refTargets[e]!;
      if (t !== u && dead(t)) indegree[t]!++;
    }
  }
  const order = new Int32Array(total);
  const placed = new Uint8Array(n);
  let size = 0;
  for (let p = 0; p < n; p++) {
    if (dead(p) && indegree[p] === 0) {
      order[size++] = p;
      placed[p] = 1;
    }
  }
  for (let i = 0; i < size; i++) {
    const u = order[i]!;
    for (let e = refStart[u]!, end = refStart[u + 1]!; e < end; e++) {
      const t = refTargets[e]!;
      if (t === u || !dead(t)) continue;
      if (--indegree[t]! === 0) {
        order[size++] = t;
        placed[t] = 1;
      }
    }
  }
  for (let p = 0; p < n && size < total; p++) if (dead(p) && !placed[p]) order[size++] = p;
  return order;
}

export interface PinClosure {
  readonly paths: number;
  readonly bytes: number;
}

/**
 * Each pin's whole closure: paths and NAR bytes. Walks each closure on its own, so the work is
 * the sum of their sizes; beyond `maxSteps` in all, undefined.
 */
export function pinClosures(graph: PathGraph, maxSteps = 50_000_000): PinClosure[] | undefined {
  const seen = new Int32Array(graph.count).fill(-1);
  const narSeen = new Int32Array(graph.narBytes.length).fill(-1);
  const queue = new Int32Array(graph.count);
  const result: PinClosure[] = [];
  let steps = 0;
  for (let k = 0; k < graph.pins.length; k++) {
    const root = graph.pins[k]!.path;
    if (root < 0 || root >= graph.count) {
      result.push({ paths: 0, bytes: 0 });
      continue;
    }
    let head = 0;
    let tail = 0;
    let bytes = 0;
    seen[root] = k;
    queue[tail++] = root;
    while (head < tail) {
      const u = queue[head++]!;
      const nar = graph.nar[u]!;
      if (nar >= 0 && narSeen[nar] !== k) {
        narSeen[nar] = k;
        bytes += graph.narBytes[nar]!;
      }
      for (let e = graph.refStart[u]!, end = graph.refStart[u + 1]!; e < end; e++) {
        if (++steps > maxSteps) return undefined;
        const t = graph.refTargets[e]!;
        if (seen[t] !== k) {
          seen[t] = k;
          queue[tail++] = t;
        }
      }
    }
    result.push({ paths: tail, bytes });
  }
  return result;
}
