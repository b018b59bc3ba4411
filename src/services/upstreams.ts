// Which store paths a cache's upstreams hold, for uploads that refer to paths
// the cache itself lacks. Upstreams are asked in priority order, many paths at
// once; answers are remembered in this process and in the index (shared by
// all workers and replicas): a presence for long, since a signed path rarely
// disappears, an absence briefly, since it may be pushed there any moment.
// An upstream that cannot answer (timeout, 5xx, network) is not remembered.

import type { CacheIndex, PresenceAnswer, UpstreamRecord } from '../index/cache-index.ts';
import { parsePublicKey, trustedKeyMap, type PublicKey } from '../nix/signing-key.ts';
import type { UpstreamFindings, UpstreamLookup } from './publish.ts';
import { askUpstream, type UpstreamAnswer } from './upstream-fetch.ts';

export interface UpstreamCheckerOptions {
  readonly storeDir: string;
  /** Per narinfo request, body included. */
  readonly timeoutMs?: number;
  /** Narinfo requests in flight per check. */
  readonly concurrency?: number;
  readonly presentTtlMs?: number;
  readonly absentTtlMs?: number;
  /** Answers kept in this process. */
  readonly memoryEntries?: number;
}

const DEFAULTS = {
  timeoutMs: 5000,
  concurrency: 16,
  presentTtlMs: 24 * 60 * 60 * 1000,
  absentTtlMs: 60 * 1000,
  memoryEntries: 100_000,
};

export class UpstreamChecker implements UpstreamLookup {
  readonly #index: CacheIndex;
  readonly #options: Required<UpstreamCheckerOptions>;
  /** Keyed by upstream URL, its keys and the hash part: answers do not depend on which cache asks. */
  readonly #memory = new Map<string, { present: boolean; expires: number }>();
  /** One request per question, however many uploads ask it at once. */
  readonly #inFlight = new Map<string, Promise<UpstreamAnswer>>();

  constructor(index: CacheIndex, options: UpstreamCheckerOptions) {
    this.#index = index;
    this.#options = { ...DEFAULTS, ...options };
  }

  async findPresent(cache: string, hashParts: readonly string[]): Promise<UpstreamFindings> {
    const upstreams = await this.#index.listUpstreams(cache);
    const present = new Set<string>();
    const findings = { upstreams: upstreams.map((u) => u.url), present };
    let unresolved = [...new Set(hashParts)];
    if (upstreams.length === 0 || unresolved.length === 0) return findings;

    await this.#loadRemembered(cache, upstreams, unresolved);
    for (const upstream of upstreams) {
      if (unresolved.length === 0) break;
      const found = await this.#ask(upstream, unresolved);
      for (const hashPart of found) present.add(hashPart);
      unresolved = unresolved.filter((h) => !found.has(h));
    }
    return findings;
  }

  /** Brings the index's fresh answers into memory for what memory cannot answer. */
  async #loadRemembered(cache: string, upstreams: readonly UpstreamRecord[], hashParts: readonly string[]): Promise<void> {
    const unknown = hashParts.filter((h) => upstreams.some((u) => this.#recall(u, h) === undefined));
    if (unknown.length === 0) return;
    const byUrl = new Map(upstreams.map((u) => [u.url, u]));
    for (const row of await this.#index.getUpstreamPresence(cache, unknown)) {
      const upstream = byUrl.get(row.url);
      if (upstream) this.#remember(upstream, row);
    }
  }

  /** The hash parts this upstream holds, asking it about those it has no fresh answer for. */
  async #ask(upstream: UpstreamRecord, hashParts: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    const toFetch: string[] = [];
    for (const hashPart of hashParts) {
      const known = this.#recall(upstream, hashPart);
      if (known === undefined) toFetch.push(hashPart);
      else if (known) found.add(hashPart);
    }
    if (toFetch.length === 0) return found;

    const trusted = trustedKeyMap(upstream.publicKeys.map((k) => parsePublicKey(k)));
    const answers: PresenceAnswer[] = [];
    await forEachLimited(toFetch, this.#options.concurrency, async (hashPart) => {
      const answer = await this.#fetchOnce(upstream, trusted, hashPart);
      if (answer === 'failed') return;
      const remembered = { hashPart, present: answer === 'present', checkedAt: Date.now() };
      this.#remember(upstream, remembered);
      answers.push(remembered);
      if (remembered.present) found.add(hashPart);
    });
    await this.#index.recordUpstreamPresence(upstream, answers);
    return found;
  }

  #fetchOnce(upstream: UpstreamRecord, trusted: ReadonlyMap<string, PublicKey>, hashPart: string): Promise<UpstreamAnswer> {
    const key = memoryKey(upstream, hashPart);
    let pending = this.#inFlight.get(key);
    if (!pending) {
      pending = askUpstream(upstream.url, trusted, hashPart, this.#options).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  /** A fresh remembered answer, or undefined. */
  #recall(upstream: UpstreamRecord, hashPart: string): boolean | undefined {
    const key = memoryKey(upstream, hashPart);
    const entry = this.#memory.get(key);
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) {
      this.#memory.delete(key);
      return undefined;
    }
    return entry.present;
  }

  #remember(upstream: UpstreamRecord, answer: PresenceAnswer): void {
    const expires = answer.checkedAt + (answer.present ? this.#options.presentTtlMs : this.#options.absentTtlMs);
    if (expires <= Date.now()) return;
    const key = memoryKey(upstream, answer.hashPart);
    this.#memory.delete(key);
    this.#memory.set(key, { present: answer.present, expires });
    // Map order is insertion order: the oldest answer goes first.
    if (this.#memory.size > this.#options.memoryEntries) this.#memory.delete(this.#memory.keys().next().value!);
  }
}

function memoryKey(upstream: UpstreamRecord, hashPart: string): string {
  return `${upstream.url} ${upstream.publicKeys.join(' ')} ${hashPart}`;
}

/** Runs `fn` over `items` with at most `limit` at a time; `fn` must not throw. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
