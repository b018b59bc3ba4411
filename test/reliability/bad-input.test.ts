// A corpus of bad requests against one real server: malformed narinfos and
// NARs, URLs that try to leave a cache (traversal, encoding tricks, NUL,
// overlong), headers too large, broken HTTP, bad tokens, bodies that stall or
// stop halfway, and admin API calls with wrong fields. Each must get the 4xx
// written in the table (never a 500, never a hang), the server must stay up,
// and nothing may be stored: the blob store's files, the index's paths,
// NARs, caches and tokens are the same before and after.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import type { VerifyReport } from '../../src/services/verify.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { larder } from '../helpers/larder-cli.ts';
import { startLarder, type RunningLarder } from '../helpers/larder-server.ts';
import { backends } from '../helpers/backends.ts';
import { loadConfig, type ServerConfig } from '../../src/config/config.ts';
import { openStore } from '../../src/services/larder.ts';
import { bearer, httpRequest, makePath, randomHashPart, sha256, uploadPath } from './fixtures.ts';

interface Case {
  readonly name: string;
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
  /** Sent as Authorization: Bearer; the write token of main unless given (null: none). */
  readonly token?: string | null;
  readonly status: number;
}

/** Raw bytes on a fresh connection; the status of the answer, or 0 when the server closed without one. */
function rawExchange(port: number, bytes: Buffer | string, timeoutMs = 10_000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    const done = () => resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0), text });
    socket.on('end', done).on('close', done).on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? done() : reject(e)));
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`no answer in ${timeoutMs} ms to ${String(bytes).slice(0, 80)}`));
    });
    socket.write(bytes);
  });
}

/** Every file of a directory store (temporary ones too) with its size. */
async function directoryFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await directoryFiles(dir, rel)));
    else out.push(`${rel} ${(await stat(join(dir, rel))).size}`);
  }
  return out;
}

/** Every blob of the configured store with its size, and its unfinished uploads. */
async function storeFiles(config: ServerConfig): Promise<string[]> {
  if (config.storage.type === 'filesystem') return (await directoryFiles(config.storage.path)).sort();
  const store = await openStore(config.storage);
  try {
    const files: string[] = [];
    for await (const entry of store.listEntries('')) files.push(`${entry.key} ${entry.size}`);
    return [...files.sort(), `unfinished uploads: ${await store.sweepAbandoned(0, true)}`];
  } finally {
    await store.close();
  }
}

/** What the server holds: blobs, and the index's paths, NARs, caches and tokens. */
async function snapshot(server: RunningLarder, env: NodeJS.ProcessEnv): Promise<unknown> {
  const fullEnv = { ...process.env, ...env };
  const config = await loadConfig({ env: fullEnv, flags: { 'data-dir': server.dataDir } });
  const verify = JSON.parse(await larder(['verify', '--json', '--data', server.dataDir], fullEnv).catch((e: { stdout: string }) => e.stdout)) as VerifyReport;
  const api = (path: string) => httpRequest(server.url, path, { headers: bearer(server.adminToken) }).then((a) => JSON.parse(a.body.toString()) as unknown);
  return {
    files: await storeFiles(config),
    problems: verify.problems,
    caches: verify.caches,
    apiCaches: await api('/api/v1/caches'),
    tokens: await api('/api/v1/tokens'),
  };
}

const narTokens = (...tokens: string[]) =>
  Buffer.concat(
    tokens.flatMap((token) => {
      const bytes = Buffer.from(token);
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(bytes.length));
      return [length, bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)];
    }),
  );
/** xz from the system's program (node:zlib has none). */
const xzCompressSync = (data: Buffer) => execFileSync('xz', ['-c'], { input: data });
/** A NAR upload's URL for a body: named after its own hash, so only the contents can be wrong. */
const narUrl = (body: Buffer, ext = '') => `nar/${encodeNix32(sha256(body))}.nar${ext}`;

for (const backend of backends) test(`${backend.name}: bad input is refused with the right 4xx, the server stays up, and nothing is stored`, async (t) => {
  const env = await backend.env(t);
  if (!env) return;
  const server = await startLarder(t, { env: { ...env, LARDER_MAX_BODY_SIZE: '64KiB', LARDER_MAX_NAR_SIZE: '1MiB', LARDER_GC_INTERVAL: 'off' } });
  const port = Number(new URL(server.url).port);
  // A path in the cache, and a NAR uploaded without its narinfo (what narinfo cases point at).
  const good = await makePath('good', 'in the cache before the corpus');
  assert.deepEqual(await uploadPath(server.cacheUrl, server.writeToken, good), { nar: 201, narinfo: 201 });
  const nar = await makePath('nar-only', 'a NAR whose narinfo the corpus mangles');
  assert.equal((await httpRequest(server.url, `/main/${nar.url}`, { method: 'PUT', body: nar.file, headers: bearer(server.writeToken) })).status, 201);
  const readToken = JSON.parse(
    (await httpRequest(server.url, '/api/v1/tokens', { method: 'POST', headers: bearer(server.adminToken), body: JSON.stringify({ cache: 'main', permission: 'read' }) })).body.toString(),
  ).token as string;
  const KEY = ((JSON.parse((await httpRequest(server.url, '/api/v1/caches/main', { headers: bearer(server.adminToken) })).body.toString()) as { publicKeys: string[] }).publicKeys[0]!).replace(/^[^:]+/, 'up-1');
  const before = await snapshot(server, env);

  const h = nar.hashPart;
  const narinfoCase = (name: string, body: string | Buffer, status: number, headers?: Record<string, string>): Case => ({ name: `narinfo: ${name}`, method: 'PUT', path: `/main/${h}.narinfo`, body, status, ...(headers && { headers }) });
  const valid = nar.narinfo();
  const big = Buffer.alloc(2 * 1024 * 1024, 1);
  const hugeFile = Buffer.concat([narTokens('nix-archive-1', '(', 'type', 'regular', 'contents'), Buffer.from([0, 0, 0, 0, 0, 0, 0, 16])]);
  const cases: Case[] = [
    // URLs: traversal, encoding tricks, NUL, overlong.
    { name: 'dot-dot segment', path: '/main/../main/nix-cache-info', status: 400 },
    { name: '%2e%2e', path: '/main/%2e%2e/x', status: 400 },
    { name: '%2E%2e mixed case', path: '/main/%2E%2e/nix-cache-info', status: 400 },
    { name: 'encoded slashes', path: '/main/nar/..%2f..%2fadmin-token', status: 400 },
    { name: 'encoded backslash', path: '/main/a%5cb', status: 400 },
    { name: 'double encoding stays literal', path: '/main/%252e%252e/nix-cache-info', status: 404 },
    { name: 'NUL', path: '/main/nar/%00.nar', status: 400 },
    { name: 'overlong UTF-8 dots', path: '/main/%c0%ae%c0%ae/nix-cache-info', status: 400 },
    { name: 'lone percent', path: '/main/%', status: 400 },
    { name: 'traversal in the cache name', path: '/%2e%2e/main/nix-cache-info', status: 400 },
    { name: 'empty segment', path: '/main//nix-cache-info', status: 404 },
    { name: 'long file name', path: `/main/${'a'.repeat(4000)}.narinfo`, status: 404 },
    { name: 'unknown cache', path: '/nope/nix-cache-info', status: 404 },
    { name: 'hash part of the wrong alphabet', path: `/main/${'e'.repeat(32)}.narinfo`, status: 404 },
    { name: 'PUT of a non-file', method: 'PUT', path: '/main/realisations/x.doi', body: 'x', status: 400 },
    { name: 'NAR file name not nix32', method: 'PUT', path: '/main/nar/hello.nar', body: 'x', status: 400 },
    { name: 'NAR compression unknown', method: 'PUT', path: `/main/nar/${'0'.repeat(52)}.nar.lz4`, body: 'x', status: 415 },
    { name: 'NAR in a subdirectory', method: 'PUT', path: `/main/nar/x/${'0'.repeat(52)}.nar`, body: 'x', status: 400 },
    { name: 'method not allowed', method: 'DELETE', path: `/main/${good.hashPart}.narinfo`, status: 405 },
    // Tokens.
    { name: 'garbage bearer token', path: '/main/nix-cache-info', token: 'garbage', status: 401 },
    { name: 'token with the wrong prefix', path: '/main/nix-cache-info', token: `xyz_${server.writeToken.slice(4)}`, status: 401 },
    { name: 'large token', path: '/main/nix-cache-info', token: `ldr_${'A'.repeat(12_000)}`, status: 401 },
    { name: 'unknown scheme', path: '/main/nix-cache-info', token: null, headers: { Authorization: `Token ${server.writeToken}` }, status: 401 },
    { name: 'Basic with bad base64', path: '/main/nix-cache-info', token: null, headers: { Authorization: 'Basic !!!%%%' }, status: 401 },
    { name: 'Basic with an empty password', path: '/main/nix-cache-info', token: null, headers: { Authorization: `Basic ${Buffer.from('user:').toString('base64')}` }, status: 401 },
    { name: 'read token uploading', method: 'PUT', path: `/main/${h}.narinfo`, body: valid, token: readToken, status: 403 },
    { name: 'no token uploading', method: 'PUT', path: `/main/${h}.narinfo`, body: valid, token: null, status: 401 },
    // Narinfos.
    narinfoCase('empty', '', 400),
    narinfoCase('no final newline', valid.slice(0, -1), 400),
    narinfoCase('CRLF', valid.replaceAll('\n', '\r\n'), 400),
    narinfoCase('binary garbage', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919) & 0xff)), 400),
    narinfoCase('missing NarHash', nar.narinfo({ NarHash: undefined }), 400),
    narinfoCase('NarSize 0', nar.narinfo({ NarSize: '0' }), 400),
    narinfoCase('NarSize with a leading +', nar.narinfo({ NarSize: `+${nar.nar.length}` }), 400),
    narinfoCase('NarSize beyond 2^53', nar.narinfo({ NarSize: '18446744073709551616' }), 400),
    narinfoCase('StorePath of another hash', nar.narinfo({ StorePath: `/nix/store/${randomHashPart()}-other` }), 400),
    narinfoCase('StorePath outside the store', nar.narinfo({ StorePath: `/etc/${h}-x` }), 400),
    narinfoCase('URL with traversal', nar.narinfo({ URL: 'nar/../../admin-token' }), 400),
    narinfoCase('URL absolute', nar.narinfo({ URL: 'http://evil.example/nar/x.nar' }), 400),
    narinfoCase('reference to a path not in the cache', nar.narinfo({ References: `${randomHashPart()}-absent` }), 409),
    narinfoCase('reference that is not a store path', nar.narinfo({ References: '../../etc/passwd' }), 400),
    narinfoCase('NarHash that disagrees with the NAR', nar.narinfo({ NarHash: `sha256:${encodeNix32(sha256('no'))}` }), 422),
    narinfoCase('NAR never uploaded', nar.narinfo({ URL: `nar/${encodeNix32(sha256('never'))}.nar.zst` }), 409),
    narinfoCase('NUL in a field (PostgreSQL cannot store it)', nar.narinfo({ System: 'x86_64\0linux' }), 400),
    narinfoCase('bad signature syntax', `${valid}Sig: key:not-base64!\n`, 400),
    narinfoCase('over the body limit', `${valid}X-Pad: ${'p'.repeat(70 * 1024)}\n`, 413),
    narinfoCase('Content-Encoding with broken data', Buffer.from('not brotli at all'), 400, { 'Content-Encoding': 'br' }),
    narinfoCase('Content-Encoding unknown', valid, 415, { 'Content-Encoding': 'lz4' }),
    narinfoCase('Content-Encoding bomb over the limit', gzipSync(Buffer.alloc(1024 * 1024, 'a')), 413, { 'Content-Encoding': 'gzip' }),
    // NARs.
    { name: 'NAR: not a NAR', method: 'PUT', path: `/main/${narUrl(Buffer.from('hello'))}`, body: 'hello', status: 400 },
    { name: 'NAR: truncated', method: 'PUT', path: `/main/${narUrl(nar.nar.subarray(0, 100))}`, body: nar.nar.subarray(0, 100), status: 400 },
    { name: 'NAR: a file claiming 2^60 bytes', method: 'PUT', path: `/main/${narUrl(hugeFile)}`, body: hugeFile, status: 400 },
    { name: 'NAR: trailing bytes', method: 'PUT', path: `/main/${narUrl(Buffer.concat([nar.nar, Buffer.alloc(8)]))}`, body: Buffer.concat([nar.nar, Buffer.alloc(8)]), status: 400 },
    { name: 'NAR: zstd truncated', method: 'PUT', path: `/main/${narUrl(nar.file.subarray(0, 20), '.zst')}`, body: nar.file.subarray(0, 20), status: 400 },
    { name: 'NAR: zstd of garbage', method: 'PUT', path: `/main/${narUrl(zstdCompressSync(Buffer.from('garbage')), '.zst')}`, body: zstdCompressSync(Buffer.from('garbage')), status: 400 },
    { name: 'NAR: xz that is not xz', method: 'PUT', path: `/main/${narUrl(Buffer.from('not xz'), '.xz')}`, body: 'not xz', status: 400 },
    { name: 'NAR: xz of garbage', method: 'PUT', path: `/main/${narUrl(xzCompressSync(Buffer.from('garbage')), '.xz')}`, body: xzCompressSync(Buffer.from('garbage')), status: 400 },
    { name: 'NAR: bzip2 that is not bzip2', method: 'PUT', path: `/main/${narUrl(Buffer.from('BZh9 nope'), '.bz2')}`, body: 'BZh9 nope', status: 400 },
    { name: 'NAR: body not matching its URL', method: 'PUT', path: `/main/${narUrl(Buffer.from('other'), '.zst')}`, body: nar.file, status: 422 },
    { name: 'NAR: over max-nar-size', method: 'PUT', path: `/main/${narUrl(big)}`, body: big, status: 413 },
    { name: 'NAR: declared over max-nar-size', method: 'PUT', path: `/main/${narUrl(big)}`, headers: { 'Content-Length': String(2 ** 40) }, status: 413 },
    // The admin API.
    { name: 'API: not JSON', method: 'POST', path: '/api/v1/tokens', body: '{nope', token: server.adminToken, status: 400 },
    { name: 'API: JSON nested 100000 deep', method: 'POST', path: '/api/v1/tokens', body: '['.repeat(100_000), token: server.adminToken, status: 400 },
    { name: 'API: array body', method: 'POST', path: '/api/v1/tokens', body: '[]', token: server.adminToken, status: 400 },
    { name: 'API: permission root', method: 'POST', path: '/api/v1/tokens', body: JSON.stringify({ cache: 'main', permission: 'root' }), token: server.adminToken, status: 400 },
    { name: 'API: expiry as a string', method: 'POST', path: '/api/v1/tokens', body: JSON.stringify({ cache: 'main', permission: 'read', expiresInSeconds: '10' }), token: server.adminToken, status: 400 },
    { name: 'API: expiry beyond any date', method: 'POST', path: '/api/v1/tokens', body: JSON.stringify({ cache: 'main', permission: 'read', expiresInSeconds: 1e300 }), token: server.adminToken, status: 400 },
    { name: 'API: NUL in a label (PostgreSQL cannot store it)', method: 'POST', path: '/api/v1/tokens', body: JSON.stringify({ cache: 'main', permission: 'read', label: 'a\0b' }), token: server.adminToken, status: 400 },
    { name: 'API: NUL in a cache name', method: 'POST', path: '/api/v1/tokens', body: JSON.stringify({ cache: 'ma\0in', permission: 'read' }), token: server.adminToken, status: 400 },
    { name: 'API: NUL in an upstream URL', method: 'PUT', path: '/api/v1/caches/main/upstreams', body: JSON.stringify([{ url: 'http://up.example/a\0', publicKeys: [KEY], priority: 1 }]), token: server.adminToken, status: 400 },
    { name: 'API: NUL in a query', path: '/api/v1/tokens?cache=%00', token: server.adminToken, status: 400 },
    { name: 'API: token for an unknown cache', method: 'POST', path: '/api/v1/tokens', body: JSON.stringify({ cache: 'nope', permission: 'read' }), token: server.adminToken, status: 404 },
    { name: 'API: cache name with traversal', method: 'POST', path: '/api/v1/caches', body: JSON.stringify({ name: '../etc' }), token: server.adminToken, status: 400 },
    { name: 'API: cache name reserved', method: 'POST', path: '/api/v1/caches', body: JSON.stringify({ name: 'api' }), token: server.adminToken, status: 400 },
    { name: 'API: priority out of range', method: 'PATCH', path: '/api/v1/caches/main', body: JSON.stringify({ priority: 1e9 }), token: server.adminToken, status: 400 },
    { name: 'API: retention nonsense', method: 'PATCH', path: '/api/v1/caches/main', body: JSON.stringify({ retention: 'forever' }), token: server.adminToken, status: 400 },
    { name: 'API: maxSize fractional bytes', method: 'PATCH', path: '/api/v1/caches/main', body: JSON.stringify({ maxSize: 1.5 }), token: server.adminToken, status: 400 },
    { name: 'API: missing with non-strings', method: 'POST', path: '/api/v1/caches/main/missing', body: JSON.stringify({ paths: [1, 2] }), status: 400 },
    { name: 'API: missing with a path outside the store', method: 'POST', path: '/api/v1/caches/main/missing', body: JSON.stringify({ paths: ['/etc/passwd'] }), status: 400 },
    { name: 'API: pin with a bad name', method: 'PUT', path: '/api/v1/caches/main/pins/..', body: JSON.stringify({ storePath: good.storePath }), status: 400 },
    { name: 'API: pin with a bad name 2', method: 'PUT', path: '/api/v1/caches/main/pins/-x', body: JSON.stringify({ storePath: good.storePath }), status: 400 },
    { name: 'API: pin of a path not in the cache', method: 'PUT', path: '/api/v1/caches/main/pins/p', body: JSON.stringify({ storePath: `/nix/store/${randomHashPart()}-x` }), status: 409 },
    { name: 'API: delete a path by a bad name', method: 'DELETE', path: '/api/v1/caches/main/paths/zzz', token: server.adminToken, status: 400 },
    { name: 'API: gc with a string flag', method: 'POST', path: '/api/v1/caches/main/gc', body: JSON.stringify({ dryRun: 'yes' }), token: server.adminToken, status: 400 },
    { name: 'API: unknown version', path: '/api/v2/caches', token: server.adminToken, status: 404 },
    { name: 'API: revoke an unknown token', method: 'DELETE', path: '/api/v1/tokens/ffff', token: server.adminToken, status: 404 },
  ];

  for (const c of cases) {
    const headers: Record<string, string> = { ...c.headers };
    const token = c.token === undefined ? server.writeToken : c.token;
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    if (c.headers?.['Content-Length'] !== undefined) {
      // A declared length the body does not have: the server must refuse before reading.
      const answer = await rawExchange(port, `${c.method} ${c.path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${c.headers['Content-Length']}\r\n\r\n`);
      assert.equal(answer.status, c.status, `${c.name}: ${answer.text.slice(0, 300)}`);
      continue;
    }
    const answer = await httpRequest(server.url, c.path, { method: c.method ?? 'GET', headers, ...(c.body !== undefined && { body: c.body }), timeoutMs: 10_000 });
    assert.equal(answer.status, c.status, `${c.name}: ${answer.status} ${answer.body.toString().slice(0, 300)}`);
    assert.doesNotMatch(answer.body.toString(), /\n\s+at .*\(.*:\d+:\d+\)/, `${c.name}: no stack trace`);
  }

  await t.test('HTTP itself: broken requests, huge headers, NUL, smuggling, a body that stops halfway', async () => {
    const raw: Array<[string, string | Buffer, number]> = [
      ['huge header', `GET /main/nix-cache-info HTTP/1.1\r\nHost: x\r\nX-Junk: ${'j'.repeat(20_000)}\r\n\r\n`, 431],
      ['huge token', `GET /main/nix-cache-info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ldr_${'A'.repeat(20_000)}\r\n\r\n`, 431],
      ['overlong path', `GET /main/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431],
      ['NUL in the request line', Buffer.from('GET /main/nix-cache-info\0 HTTP/1.1\r\nHost: x\r\n\r\n'), 400],
      ['garbage', 'HELLO THERE\r\n\r\n', 400],
      ['bad version', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', 400],
      ['Content-Length and Transfer-Encoding', `PUT /main/${h}.narinfo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
      ['negative Content-Length', `PUT /main/${h}.narinfo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`, 400],
      ['two Content-Lengths', `PUT /main/${h}.narinfo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`, 400],
      ['bad chunk size', `PUT /main/${h}.narinfo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.writeToken}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`, 400],
    ];
    for (const [name, bytes, status] of raw) {
      const answer = await rawExchange(port, bytes);
      assert.equal(answer.status, status, `${name}: ${answer.text.slice(0, 200)}`);
    }
    // A NAR body that stops halfway (the client dies): the server drops the upload and keeps nothing.
    const cut = `PUT /main/${nar.url.replace(nar.fileHash, encodeNix32(sha256('cut')))} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.writeToken}\r\nContent-Length: ${nar.file.length}\r\n\r\n`;
    const socket = connect(port, '127.0.0.1');
    socket.write(Buffer.concat([Buffer.from(cut), nar.file.subarray(0, 40)]));
    await sleep(200);
    socket.destroy();
  });

  await t.test('slow clients: 50 stalled connections (headers or body) do not keep the server from answering', async () => {
    const stalled = Array.from({ length: 50 }, (_, i) => {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      // Half stall in their headers, half in a NAR body they never finish.
      if (i % 2 === 0) socket.write('GET /main/nix-cache-info HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      else socket.write(`PUT /main/nar/${encodeNix32(sha256(`slow ${i}`))}.nar HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.writeToken}\r\nContent-Length: 4096\r\n\r\nnix-`);
      return socket;
    });
    await sleep(300);
    for (let i = 0; i < 20; i++) {
      const answer = await httpRequest(server.url, `/main/${good.hashPart}.narinfo`, { headers: bearer(server.writeToken), timeoutMs: 5000 });
      assert.equal(answer.status, 200);
    }
    for (const socket of stalled) socket.destroy();
  });

  // Uploads cut off are cleaned up asynchronously: give them a moment.
  const tmp = join(server.dataDir, 'store', '.tmp');
  for (let i = 0; i < 50 && (await readdir(tmp).catch(() => [])).length > 0; i++) await sleep(100);
  assert.ok(process.kill(server.pid, 0), 'the server process is alive');
  assert.equal((await httpRequest(server.url, '/healthz')).status, 200);
  assert.deepEqual(await snapshot(server, env), before, 'nothing was stored: files, paths, NARs, caches and tokens as before');
});
