// What an admin may declare as a cache's upstreams, checked before anything is
// stored: the checker will fetch `<url>/<hash>.narinfo` and trust only these keys.

import type { Upstream } from '../index/cache-index.ts';
import { formatPublicKey, parsePublicKey } from '../nix/signing-key.ts';
import { Rejection } from './rejection.ts';

const SHAPE = '{url, publicKeys, priority}';

function invalid(where: string, problem: string): Rejection {
  return new Rejection('invalid', `${where}: ${problem}`);
}

function checkUrl(value: unknown, where: string): string {
  if (typeof value !== 'string') throw invalid(where, `expected a URL string, got ${JSON.stringify(value)}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(where, `'${value}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(where, `'${value}' is not http or https`);
  if (value.endsWith('/')) throw invalid(where, `'${value}' must not end with a slash`);
  // The list is shown to every reader of the cache, so it must hold no secret.
  if (url.username !== '' || url.password !== '') throw invalid(where, `'${value}' must not carry credentials`);
  if (url.search !== '' || url.hash !== '') throw invalid(where, `'${value}' must not have a query or fragment`);
  return value;
}

function checkKeys(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid(where, 'expected a non-empty array of Nix public keys (name:base64)');
  }
  const keys = value.map((key, i) => {
    if (typeof key !== 'string') throw invalid(`${where}[${i}]`, `expected a string, got ${JSON.stringify(key)}`);
    try {
      return formatPublicKey(parsePublicKey(key));
    } catch (error) {
      throw invalid(`${where}[${i}]`, (error as Error).message);
    }
  });
  return [...new Set(keys)];
}

function checkPriority(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 1000) {
    throw invalid(where, `expected an integer from 0 to 1000, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The upstream list of a request body; the first problem is refused, naming its place. */
export function parseUpstreams(value: unknown): Upstream[] {
  if (!Array.isArray(value)) throw invalid('upstreams', `expected an array of ${SHAPE}`);
  const seen = new Set<string>();
  return value.map((item: unknown, i) => {
    const where = `upstreams[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw invalid(where, `expected an object ${SHAPE}`);
    const { url, publicKeys, priority } = item as Record<string, unknown>;
    const upstream: Upstream = {
      url: checkUrl(url, `${where}.url`),
      publicKeys: checkKeys(publicKeys, `${where}.publicKeys`),
      priority: checkPriority(priority, `${where}.priority`),
    };
    if (seen.has(upstream.url)) throw invalid(`${where}.url`, `'${upstream.url}' is listed twice`);
    seen.add(upstream.url);
    return upstream;
  });
}
