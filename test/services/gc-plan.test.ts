// The garbage collection planner: the closure rule, the quota, the deletion
// order, on hand-made caches and on random graphs (fast-check).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Fate, isKept, pinClosures, planGc, type PathGraph, type PlanPolicy } from '../../src/services/gc-plan.ts';

interface Spec {
  /** Per path: last access. */
  readonly access: readonly number[];
  /** Per path: the ids it refers to. */
  readonly refs: readonly (readonly number[])[];
  /** Per path: NAR id (default: its own). */
  readonly nar?: readonly number[];
  /** Per NAR: bytes (default 100 each). */
  readonly narBytes?: readonly number[];
  readonly pins?: readonly (readonly [string, number])[];
}

function graphOf(spec: Spec): PathGraph {
  const n = spec.access.length;
  const nar = Int32Array.from(spec.nar ?? spec.access.map((_, i) => i));
  const narCount = Math.max(0, ...nar) + 1;
  const refStart = new Uint32Array(n + 1);
  const targets: number[] = [];
  for (let i = 0; i < n; i++) {
    refStart[i] = targets.length;
    targets.push(...(spec.refs[i] ?? []));
  }
  refStart[n] = targets.length;
  return {
    count: n,
    accessedAt: Float64Array.from(spec.access),
    nar,
    narBytes: Float64Array.from(spec.narBytes ?? Array.from({ length: narCount }, () => 100)),
    refStart,
    refTargets: Int32Array.from(targets),
    pins: (spec.pins ?? []).map(([name, path]) => ({ name, path })),
  };
}

const fates = (plan: { fate: Uint8Array }) => [...plan.fate];
const { pinned, recent, unlimited, referenced, expired, evicted } = Fate;

test('no retention and no quota: everything is kept', () => {
  const plan = planGc(graphOf({ access: [1, 2, 3], refs: [[], [0], [1]] }), { keepAccessedSince: null, maxSize: null });
  assert.deepEqual(fates(plan), [unlimited, unlimited, unlimited]);
  assert.equal(plan.deletionOrder.length, 0);
  assert.equal(plan.freedBytes, 0);
  assert.equal(plan.totalBytes, 300);
});

test('a recent path keeps its whole closure, however old', () => {
  // 2 → 1 → 0, only 2 recent.
  const plan = planGc(graphOf({ access: [1, 1, 50], refs: [[], [0], [1]] }), { keepAccessedSince: 10, maxSize: null });
  assert.deepEqual(fates(plan), [referenced, referenced, recent]);
  assert.equal(plan.keptBy[1], 2);
  assert.equal(plan.keptBy[0], 1);
});

test('an old path goes even when what it refers to stays', () => {
  // 1 (old) → 0 (recent).
  const plan = planGc(graphOf({ access: [50, 1], refs: [[], [0]] }), { keepAccessedSince: 10, maxSize: null });
  assert.deepEqual(fates(plan), [recent, expired]);
  assert.deepEqual([...plan.deletionOrder], [1]);
  assert.equal(plan.freedBytes, 100);
  assert.equal(plan.expiredBytes, 100);
});

test('a pin keeps its closure whatever its age; referrers go first in the deletion order', () => {
  // 3 → 2 → 1 → 0; 4 → 1. Pin on 2; everything old.
  const plan = planGc(graphOf({ access: [1, 1, 1, 1, 1], refs: [[], [0], [1], [2], [1]], pins: [['release', 2]] }), {
    keepAccessedSince: 10,
    maxSize: null,
  });
  assert.deepEqual(fates(plan), [referenced, referenced, pinned, expired, expired]);
  assert.equal(plan.keptBy[2], 0, 'the first pin');
  assert.deepEqual(new Set(plan.deletionOrder), new Set([3, 4]));
});

test('dead paths are deleted referrers first', () => {
  // 0 ← 1 ← 2, 0 ← 2, all old.
  const plan = planGc(graphOf({ access: [1, 1, 1], refs: [[], [0], [0, 1]] }), { keepAccessedSince: 10, maxSize: null });
  assert.deepEqual([...plan.deletionOrder], [2, 1, 0]);
});

test('the quota evicts least recently used first, referrers before what they refer to, and stops when under', () => {
  // Closures: a = 1 → 0 (accessed at 10), b = 3 → 2 (at 20), c = 4 (at 30). Each NAR 100 bytes.
  const graph = graphOf({ access: [5, 10, 5, 20, 30], refs: [[], [0], [], [2], []] });
  const plan = planGc(graph, { keepAccessedSince: null, maxSize: 300 });
  assert.deepEqual(fates(plan), [evicted, evicted, unlimited, unlimited, unlimited]);
  assert.deepEqual([...plan.deletionOrder], [1, 0]);
  assert.deepEqual(plan.quota, { maxSize: 300, bytesBefore: 500, bytesAfter: 300, pinnedBytes: 0, evictedPaths: 2, reached: true });
  assert.equal(plan.freedBytes, 200);
  assert.equal(plan.expiredBytes, 0);
});

test('a dependency recently used on its own outlives the root that refers to it', () => {
  // 1 → 0; 0 accessed later than 1; 2 newest. Quota for two NARs.
  const plan = planGc(graphOf({ access: [40, 10, 50], refs: [[], [0], []] }), { keepAccessedSince: null, maxSize: 200 });
  assert.deepEqual(fates(plan), [unlimited, evicted, unlimited]);
});

test('a dependency is as recent as the most recent path referring to it', () => {
  // 0 ← 1 (at 10), 0 ← 2 (at 30); 3 at 20. Room for three: 1 goes, 0 stays for 2.
  const plan = planGc(graphOf({ access: [1, 10, 30, 20], refs: [[], [0], [0], []] }), { keepAccessedSince: null, maxSize: 300 });
  assert.deepEqual(fates(plan), [unlimited, evicted, unlimited, unlimited]);
});

test('pinned closures are never evicted; an unreachable quota evicts everything else', () => {
  const graph = graphOf({ access: [1, 2, 3, 4], refs: [[], [0], [], []], pins: [['keep', 1]] });
  const plan = planGc(graph, { keepAccessedSince: null, maxSize: 100 });
  assert.deepEqual(fates(plan), [referenced, pinned, evicted, evicted]);
  assert.deepEqual(plan.quota, { maxSize: 100, bytesBefore: 400, bytesAfter: 200, pinnedBytes: 200, evictedPaths: 2, reached: false });
});

test('a NAR shared by two paths is counted once, and freed only when both go', () => {
  // Paths 0 and 1 share NAR 0 (300 bytes); path 2 has NAR 1 (100 bytes).
  const graph = graphOf({ access: [1, 50, 1], refs: [[], [], []], nar: [0, 0, 1], narBytes: [300, 100] });
  const plan = planGc(graph, { keepAccessedSince: 10, maxSize: null });
  assert.deepEqual(fates(plan), [expired, recent, expired]);
  assert.equal(plan.totalBytes, 400);
  assert.equal(plan.keptBytes, 300);
  assert.equal(plan.freedBytes, 100);
});

test('retention and quota together: expired first, then eviction among the recent', () => {
  const graph = graphOf({ access: [1, 20, 30, 40], refs: [[], [], [], []] });
  const plan = planGc(graph, { keepAccessedSince: 10, maxSize: 200 });
  assert.deepEqual(fates(plan), [expired, evicted, recent, recent]);
  assert.equal(plan.expiredBytes, 100);
  assert.equal(plan.freedBytes, 200);
});

test('paths on a reference cycle are never evicted, and their deletion still happens when they expire', () => {
  // 0 ↔ 1 (a cycle, which Nix never makes, but an index could hold), 2 alone.
  const graph = graphOf({ access: [5, 5, 6], refs: [[1], [0], []] });
  const quota = planGc(graph, { keepAccessedSince: null, maxSize: 100 });
  assert.deepEqual(fates(quota), [unlimited, unlimited, evicted]);
  const expiredPlan = planGc(graph, { keepAccessedSince: 10, maxSize: null });
  assert.deepEqual(new Set(expiredPlan.deletionOrder), new Set([0, 1, 2]));
});

test('self-references change nothing', () => {
  const plan = planGc(graphOf({ access: [1, 50], refs: [[0], [1, 0]] }), { keepAccessedSince: 10, maxSize: null });
  assert.deepEqual(fates(plan), [referenced, recent]);
});

test('pin closures are measured one by one', () => {
  const graph = graphOf({ access: [1, 1, 1, 1], refs: [[], [0], [1], [0]], pins: [['a', 2], ['b', 3], ['c', 0]] });
  assert.deepEqual(pinClosures(graph), [
    { paths: 3, bytes: 300 },
    { paths: 2, bytes: 200 },
    { paths: 1, bytes: 100 },
  ]);
  assert.equal(pinClosures(graph, 1), undefined);
});

// ---- properties over random graphs -----------------------------------------------------------

interface RandomCache {
  readonly spec: Spec;
  readonly policy: PlanPolicy;
}

/** A random cache: a DAG (edges only to lower ids) unless `cycles`, NARs sometimes shared. */
function randomCache(cycles: boolean): fc.Arbitrary<RandomCache> {
  return fc.integer({ min: 0, max: 40 }).chain((n) =>
    fc.record({
      access: fc.array(fc.integer({ min: 0, max: 100 }), { minLength: n, maxLength: n }),
      refs: fc.array(
        fc.array(fc.integer({ min: 0, max: Math.max(0, n - 1) }), { maxLength: 4 }),
        { minLength: n, maxLength: n },
      ),
      narShare: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: n, maxLength: n }),
      narBytes: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: n, maxLength: n }),
      pins: fc.array(fc.integer({ min: 0, max: Math.max(0, n - 1) }), { maxLength: n === 0 ? 0 : 3 }),
      since: fc.option(fc.integer({ min: 0, max: 110 })),
      maxSize: fc.option(fc.integer({ min: 0, max: 20_000 })),
    }).map(({ access, refs, narShare, narBytes, pins, since, maxSize }) => ({
      spec: {
        access,
        refs: refs.map((targets, i) => (cycles ? targets : targets.filter((t) => t < i))),
        // A path shares the NAR of a lower id one time in ten.
        nar: narShare.map((share, i) => (share === 0 && i > 0 ? Math.floor(i / 2) : i)),
        narBytes,
        pins: pins.map((p, k) => [`pin-${k}`, p] as const),
      },
      policy: { keepAccessedSince: since, maxSize },
    })),
  );
}

/** Everything reachable from `from`, itself included. */
function closureOf(spec: Spec, from: readonly number[]): Set<number> {
  const seen = new Set<number>(from);
  const stack = [...from];
  while (stack.length > 0) {
    for (const t of spec.refs[stack.pop()!] ?? []) {
      if (!seen.has(t)) {
        seen.add(t);
        stack.push(t);
      }
    }
  }
  return seen;
}

function bytesOf(spec: Spec, graph: PathGraph, paths: Iterable<number>): number {
  const nars = new Set<number>();
  for (const p of paths) nars.add(graph.nar[p]!);
  let bytes = 0;
  for (const k of nars) bytes += spec.narBytes?.[k] ?? 100;
  return bytes;
}

function checkSafety({ spec, policy }: RandomCache): void {
  const graph = graphOf(spec);
  const plan = planGc(graph, policy);
  const n = graph.count;
  const kept = new Set<number>();
  for (let p = 0; p < n; p++) if (isKept(plan.fate[p]!)) kept.add(p);

  // Every kept path's references are kept.
  for (const p of kept) for (const t of spec.refs[p]!) assert.ok(kept.has(t), `kept ${p} refers to ${t}, which goes`);
  // Every pinned closure is complete.
  for (const p of closureOf(spec, (spec.pins ?? []).map(([, path]) => path))) assert.ok(kept.has(p), `${p} is in a pinned closure`);
  // Without a quota, recent paths stay; without any policy, everything does.
  if (policy.maxSize === null) {
    for (let p = 0; p < n; p++) {
      if (policy.keepAccessedSince === null || spec.access[p]! >= policy.keepAccessedSince) assert.ok(kept.has(p), `${p} is recent`);
    }
  }
  // Nothing dies but by expiry or eviction, and eviction only under a quota.
  for (let p = 0; p < n; p++) {
    if (kept.has(p)) continue;
    assert.ok(plan.fate[p] === expired || (plan.fate[p] === evicted && policy.maxSize !== null), `fate ${plan.fate[p]}`);
    if (plan.fate[p] === expired) assert.ok(policy.keepAccessedSince !== null && spec.access[p]! < policy.keepAccessedSince);
  }
  // The deletion order lists every dead path once.
  const order = [...plan.deletionOrder];
  assert.equal(order.length, n - kept.size);
  assert.equal(new Set(order).size, order.length);
  for (const p of order) assert.ok(!kept.has(p));
  // Byte counts agree with a recount.
  assert.equal(plan.keptBytes, bytesOf(spec, graph, kept));
  assert.equal(plan.totalBytes, bytesOf(spec, graph, Array.from({ length: n }, (_, i) => i)));
  assert.equal(plan.freedBytes, plan.totalBytes - plan.keptBytes);
}

test('random caches with cycles: kept closures are complete, pins hold, nothing else dies', () => {
  fc.assert(fc.property(randomCache(true), checkSafety), { numRuns: 500 });
});

test('random DAGs: the same, plus deletion order, LRU eviction and the quota frees at least the excess', () => {
  fc.assert(
    fc.property(randomCache(false), (cache) => {
      checkSafety(cache);
      const { spec, policy } = cache;
      const graph = graphOf(spec);
      const plan = planGc(graph, policy);
      const n = graph.count;
      const kept = (p: number) => isKept(plan.fate[p]!);

      // Referrers are deleted before what they refer to.
      const position = new Map([...plan.deletionOrder].map((p, i) => [p, i]));
      for (const [p, i] of position) {
        for (const t of spec.refs[p]!) if (t !== p && position.has(t)) assert.ok(position.get(t)! > i, `${p} refers to ${t}`);
      }

      if (policy.maxSize === null) return;
      const quota = plan.quota!;
      assert.equal(quota.bytesAfter, plan.keptBytes);
      const pinnedClosure = closureOf(spec, (spec.pins ?? []).map(([, path]) => path));
      if (quota.reached) {
        // At least the excess is freed …
        assert.ok(plan.keptBytes <= policy.maxSize);
        assert.ok(plan.freedBytes >= plan.totalBytes - policy.maxSize);
      } else {
        // … or, when it cannot be, everything but the pinned closures goes.
        for (let p = 0; p < n; p++) assert.equal(kept(p), pinnedClosure.has(p), `path ${p}`);
      }
      // Least recently used first: an evicted path was used no later than any kept path the quota
      // could have taken instead, a dependency counting as used when a kept referrer was.
      const retained = planGc(graph, { ...policy, maxSize: null });
      const candidates = Array.from({ length: n }, (_, i) => i).filter((p) => isKept(retained.fate[p]!) && !pinnedClosure.has(p));
      const effective = (p: number) => {
        let latest = spec.access[p]!;
        for (const q of candidates) if (closureOf(spec, [q]).has(p)) latest = Math.max(latest, spec.access[q]!);
        return latest;
      };
      const evictedPaths = candidates.filter((p) => plan.fate[p] === evicted);
      const stillKept = candidates.filter((p) => kept(p));
      if (evictedPaths.length > 0 && stillKept.length > 0) {
        const newestEvicted = Math.max(...evictedPaths.map(effective));
        const oldestKept = Math.min(...stillKept.map(effective));
        assert.ok(newestEvicted <= oldestKept, `evicted one used at ${newestEvicted}, kept one used at ${oldestKept}`);
      }
      // Eviction stopped as soon as it could.
      if (quota.evictedPaths > 0 && quota.reached) {
        const last = [...plan.deletionOrder].filter((p) => plan.fate[p] === evicted);
        assert.ok(last.length === quota.evictedPaths);
      }
    }),
    { numRuns: 500 },
  );
});

test('a million paths plan in seconds', { timeout: 60_000 }, () => {
  const n = 1_000_000;
  const refsPer = 6;
  const refStart = new Uint32Array(n + 1);
  const refTargets = new Int32Array(n * refsPer);
  let e = 0;
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < n; i++) {
    refStart[i] = e;
    for (let k = 0; k < refsPer && i > 0; k++) refTargets[e++] = Math.floor(random() * i);
  }
  refStart[n] = e;
  const graph: PathGraph = {
    count: n,
    accessedAt: Float64Array.from({ length: n }, () => Math.floor(random() * 1000)),
    nar: Int32Array.from({ length: n }, (_, i) => i),
    narBytes: Float64Array.from({ length: n }, () => 1000),
    refStart,
    refTargets: refTargets.subarray(0, e),
    pins: [{ name: 'p', path: n - 1 }],
  };
  const started = performance.now();
  const plan = planGc(graph, { keepAccessedSince: 990, maxSize: 500_000_000 });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds < 10, `${seconds} s`);
  assert.ok(plan.keptBytes <= 500_000_000);
});
