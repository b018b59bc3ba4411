// What the handlers learn about a request that its log line and metrics need:
// the cache, once it is known to exist (so that a metric's cache label never
// takes a name a client made up), and the token's public identity. Noted where
// it is learnt, so nothing is looked up twice; never the token itself.

import type { IncomingMessage } from 'node:http';
import type { TokenRecord } from '../index/cache-index.ts';

export interface RequestFacts {
  /** An existing cache the request was served against. */
  cache?: string;
  /** The token it presented, by id and label. */
  token?: { readonly id: string; readonly label: string };
}

const facts = new WeakMap<IncomingMessage, RequestFacts>();

function factsFor(req: IncomingMessage): RequestFacts {
  let known = facts.get(req);
  if (!known) facts.set(req, (known = {}));
  return known;
}

export function noteCache(req: IncomingMessage, cache: string): void {
  factsFor(req).cache = cache;
}

export function notePrincipal(req: IncomingMessage, token: Pick<TokenRecord, 'id' | 'label'>): void {
  factsFor(req).token = { id: token.id, label: token.label };
}

export function factsOf(req: IncomingMessage): Readonly<RequestFacts> {
  return facts.get(req) ?? {};
}
