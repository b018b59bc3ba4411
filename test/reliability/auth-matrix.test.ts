// Who may do what: every kind of token × a public and a private cache × every
// kind of operation, against a real server, each cell's status written out
// below from the documented rules (README "HTTP interface", docs/architecture.md
// "Tokens"), not from what the server happens to answer:
//
// - Reading a public cache (nix-cache-info, narinfo, NAR) needs no token and
//   ignores whatever token comes (a netrc entry for another server must not
//   spoil a public read): 200 for every kind, expired and revoked ones included.
// - Otherwise no token is a 401, an invalid token (expired, revoked) a 401, a
//   valid one without the permission a 403. read < write < admin within one
//   cache; a token of another cache grants nothing here; a server-admin token
//   grants everything.
// - Uploads need write. The admin API reads a cache's settings with read
//   (anyone, for a public cache, but a presented token must be valid there);
//   its keys and token list need admin of the cache.
//
// Every operation is idempotent (uploads of what is there already: 200), so
// the cells do not depend on their order.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { bearer, httpRequest, makePath, uploadPath, type PathUpload } from './fixtures.ts';

const KINDS = ['none', 'read', 'write', 'admin', 'server-admin', 'expired', 'revoked', 'other-cache'] as const;
type Kind = (typeof KINDS)[number];
const OPERATIONS = ['cache-info GET', 'narinfo GET', 'NAR GET', 'NAR PUT', 'narinfo PUT', 'API cache GET', 'API keys GET', 'API tokens GET'] as const;
type Operation = (typeof OPERATIONS)[number];

/** The expected status of each cell, one row per operation, columns in KINDS order. */
const EXPECTED: Record<'public' | 'private', Record<Operation, readonly number[]>> = {
  //                   none read write admin srv-admin expired revoked other
  public: {
    'cache-info GET': [200, 200, 200, 200, 200, 200, 200, 200],
    'narinfo GET':    [200, 200, 200, 200, 200, 200, 200, 200],
    'NAR GET':        [200, 200, 200, 200, 200, 200, 200, 200],
    'NAR PUT':        [401, 403, 200, 200, 200, 401, 401, 403],
    'narinfo PUT':    [401, 403, 200, 200, 200, 401, 401, 403],
    'API cache GET':  [200, 200, 200, 200, 200, 401, 401, 200],
    'API keys GET':   [401, 403, 403, 200, 200, 401, 401, 403],
    'API tokens GET': [401, 403, 403, 200, 200, 401, 401, 403],
  },
  private: {
    'cache-info GET': [401, 200, 200, 200, 200, 401, 401, 403],
    'narinfo GET':    [401, 200, 200, 200, 200, 401, 401, 403],
    'NAR GET':        [401, 200, 200, 200, 200, 401, 401, 403],
    'NAR PUT':        [401, 403, 200, 200, 200, 401, 401, 403],
    'narinfo PUT':    [401, 403, 200, 200, 200, 401, 401, 403],
    'API cache GET':  [401, 200, 200, 200, 200, 401, 401, 403],
    'API keys GET':   [401, 403, 403, 200, 200, 401, 401, 403],
    'API tokens GET': [401, 403, 403, 200, 200, 401, 401, 403],
  },
};

async function createToken(server: RunningLarder, body: Record<string, unknown>): Promise<{ token: string; id: string }> {
  const answer = await httpRequest(server.url, '/api/v1/tokens', { method: 'POST', headers: bearer(server.adminToken), body: JSON.stringify(body) });
  assert.equal(answer.status, 201, answer.body.toString());
  return JSON.parse(answer.body.toString()) as { token: string; id: string };
}

async function request(server: RunningLarder, cache: string, op: Operation, up: PathUpload, token: string | undefined): Promise<number> {
  const headers = token === undefined ? {} : bearer(token);
  const send = (path: string, method = 'GET', body?: Buffer | string) => httpRequest(server.url, path, { method, headers, ...(body !== undefined && { body }) });
  switch (op) {
    case 'cache-info GET':
      return (await send(`/${cache}/nix-cache-info`)).status;
    case 'narinfo GET':
      return (await send(`/${cache}/${up.hashPart}.narinfo`)).status;
    case 'NAR GET':
      return (await send(`/${cache}/${up.url}`)).status;
    case 'NAR PUT':
      return (await send(`/${cache}/${up.url}`, 'PUT', up.file)).status;
    case 'narinfo PUT':
      return (await send(`/${cache}/${up.hashPart}.narinfo`, 'PUT', up.narinfo())).status;
    case 'API cache GET':
      return (await send(`/api/v1/caches/${cache}`)).status;
    case 'API keys GET':
      return (await send(`/api/v1/caches/${cache}/keys`)).status;
    case 'API tokens GET':
      return (await send(`/api/v1/tokens?cache=${cache}`)).status;
  }
}

test('auth matrix: token kind × public/private cache × operation', async (t) => {
  const server = await startLarder(t, { env: { LARDER_GC_INTERVAL: 'off' } });
  for (const [name, isPublic] of [['pub', true], ['priv', false], ['other', false]] as const) {
    const answer = await httpRequest(server.url, '/api/v1/caches', { method: 'POST', headers: bearer(server.adminToken), body: JSON.stringify({ name, public: isPublic }) });
    assert.equal(answer.status, 201, answer.body.toString());
  }
  const otherCache = (await createToken(server, { cache: 'other', permission: 'admin' })).token;

  const got: string[] = [];
  const want: string[] = [];
  for (const [cache, visibility] of [['pub', 'public'], ['priv', 'private']] as const) {
    // The path every operation names, uploaded with the cache's write token.
    const up = await makePath(`auth-${cache}`, `a path of ${cache}`);
    const write = (await createToken(server, { cache, permission: 'write' })).token;
    assert.deepEqual(await uploadPath(`${server.url}/${cache}`, write, up), { nar: 201, narinfo: 201 });
    // A fractional expiry, as a client may compute one (PostgreSQL once refused it with a 500).
    const expiring = await createToken(server, { cache, permission: 'admin', expiresInSeconds: 0.5 });
    const revoked = await createToken(server, { cache, permission: 'admin' });
    assert.equal((await httpRequest(server.url, `/api/v1/tokens/${revoked.id}`, { method: 'DELETE', headers: bearer(server.adminToken) })).status, 200);
    const tokens: Record<Kind, string | undefined> = {
      none: undefined,
      read: (await createToken(server, { cache, permission: 'read' })).token,
      write,
      admin: (await createToken(server, { cache, permission: 'admin' })).token,
      'server-admin': server.adminToken,
      expired: expiring.token,
      revoked: revoked.token,
      'other-cache': otherCache,
    };
    await sleep(1100); // the expiry passes, and the server's one-second token cache forgets them all
    for (const op of OPERATIONS) {
      for (const [k, kind] of KINDS.entries()) {
        const status = await request(server, cache, op, up, tokens[kind]);
        got.push(`${visibility} ${op} ${kind}: ${status}`);
        want.push(`${visibility} ${op} ${kind}: ${EXPECTED[visibility][op][k]}`);
      }
    }
  }
  // One comparison of the whole table: a failure shows every cell that differs.
  assert.deepEqual(got, want);
  t.diagnostic(`${got.length} cells checked`);
});
