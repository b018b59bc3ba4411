// What the server refuses, and that a refused upload leaves nothing visible.
// Uploads are made here byte by byte (NARs from larder's encoder) so that each
// field can be corrupted on its own.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { test } from 'node:test';
import { brotliCompressSync, zstdCompressSync } from 'node:zlib';
import { encodeNar } from '../../src/nix/nar-encoder.ts';
import { encodeNix32, NIX32_ALPHABET } from '../../src/nix/nix32.ts';
import { startLarder, type RunningLarder } from '../helpers/larder-server.ts';

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest();

function randomHashPart(): string {
  return Array.from({ length: 32 }, () => NIX32_ALPHABET[Math.floor(Math.random() * 32)]).join('');
}

interface Upload {
  hashPart: string;
  storePath: string;
  nar: Buffer;
  file: Buffer;
  fileHash: string;
  url: string;
  narinfo: (overrides?: Record<string, string>) => string;
}

async function makeUpload(name: string, content: string, references: string[] = []): Promise<Upload> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-up-'));
  await writeFile(join(dir, 'f'), content);
  const nar = await buffer(encodeNar(join(dir, 'f')));
  await rm(dir, { recursive: true });
  const file = zstdCompressSync(nar);
  const fileHash = encodeNix32(sha(file));
  const hashPart = randomHashPart();
  const storePath = `/nix/store/${hashPart}-${name}`;
  const url = `nar/${fileHash}.nar.zst`;
  const fields: Record<string, string> = {
    StorePath: storePath,
    URL: url,
    Compression: 'zstd',
    FileHash: `sha256:${fileHash}`,
    FileSize: String(file.length),
    NarHash: `sha256:${encodeNix32(sha(nar))}`,
    NarSize: String(nar.length),
    References: references.join(' '),
  };
  return {
    hashPart,
    storePath,
    nar,
    file,
    fileHash,
    url,
    narinfo: (overrides = {}) =>
      Object.entries({ ...fields, ...overrides })
        .map(([k, v]) => `${k}: ${v}\n`)
        .join(''),
  };
}

function put(server: RunningLarder, path: string, body: string | Uint8Array, token = server.writeToken): Promise<Response> {
  return fetch(`${server.cacheUrl}/${path}`, { method: 'PUT', body, headers: { Authorization: `Bearer ${token}` } });
}

function get(server: RunningLarder, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${server.writeToken}`);
  return fetch(`${server.cacheUrl}/${path}`, { ...init, headers });
}

async function expectRefusal(res: Response, status: number, message: RegExp) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(text, message);
  assert.equal(text.split('\n').filter(Boolean).length, 1, 'one line naming the problem');
}

test('upload verification', async (t) => {
  const server = await startLarder(t);

  await t.test('a valid upload is signed by the server, and an identical re-upload is a no-op', async () => {
    const up = await makeUpload('ok', 'fine');
    assert.equal((await put(server, up.url, up.file)).status, 201);
    assert.equal((await put(server, `${up.hashPart}.narinfo`, up.narinfo())).status, 201);
    const served = await (await get(server, `${up.hashPart}.narinfo`)).text();
    assert.match(served, new RegExp(`^Sig: ${server.publicKey.split(':')[0]}:`, 'm'));
    assert.equal((await put(server, up.url, up.file)).status, 200);
    assert.equal((await put(server, `${up.hashPart}.narinfo`, up.narinfo())).status, 200);
    const other = await makeUpload('ok', 'different');
    await put(server, other.url, other.file);
    await expectRefusal(await put(server, `${up.hashPart}.narinfo`, other.narinfo({ StorePath: up.storePath })), 409, /already in cache main with different contents/);
  });

  await t.test('wrong FileHash: the body does not hash to the URL', async () => {
    const up = await makeUpload('fh', 'x');
    const wrongUrl = `nar/${encodeNix32(sha(Buffer.from('other')))}.nar.zst`;
    await expectRefusal(await put(server, wrongUrl, up.file), 422, /FileHash: the URL names sha256:\S+ but the body hashes to sha256:/);
    assert.equal((await get(server, wrongUrl)).status, 404);
  });

  await t.test('truncated NAR, uncompressed and compressed', async () => {
    const up = await makeUpload('trunc', 'some content that is long enough');
    const cut = up.nar.subarray(0, up.nar.length - 16);
    const url = `nar/${encodeNix32(sha(cut))}.nar`;
    await expectRefusal(await put(server, url, cut), 400, /NAR is malformed: .*truncat|NAR is malformed: .*end/i);
    assert.equal((await get(server, url)).status, 404);
    const zcut = up.file.subarray(0, up.file.length - 5);
    const zurl = `nar/${encodeNix32(sha(zcut))}.nar.zst`;
    const res = await put(server, zurl, zcut);
    assert.equal(res.status, 400, await res.clone().text());
    assert.match(await res.text(), /not valid zstd data|NAR is malformed/);
    assert.equal((await get(server, zurl)).status, 404);
  });

  await t.test('zstd of several frames is accepted whole; bytes after the last frame are refused', async () => {
    const up = await makeUpload('frames', 'line of text\n'.repeat(50_000));
    const frames: Buffer[] = [];
    for (let at = 0; at < up.nar.length; at += 64 * 1024) frames.push(zstdCompressSync(up.nar.subarray(at, at + 64 * 1024)));
    assert.ok(frames.length > 5);
    const file = Buffer.concat(frames);
    const fileHash = encodeNix32(sha(file));
    const url = `nar/${fileHash}.nar.zst`;
    assert.equal((await put(server, url, file)).status, 201);
    const narinfo = up.narinfo({ URL: url, FileHash: `sha256:${fileHash}`, FileSize: String(file.length) });
    assert.equal((await put(server, `${up.hashPart}.narinfo`, narinfo)).status, 201);
    assert.deepEqual(Buffer.from(await (await get(server, url)).arrayBuffer()), file);

    // A decoder that reads only the first frame would take this for the NAR and serve bytes Nix cannot decompress.
    const padded = Buffer.concat([up.file, Buffer.alloc(64)]);
    const paddedUrl = `nar/${encodeNix32(sha(padded))}.nar.zst`;
    await expectRefusal(await put(server, paddedUrl, padded), 400, /^NAR body is not valid zstd data: the file has 1 zstd frame\(s\) followed by bytes that are not a frame \(at byte \d+/);
    assert.equal((await get(server, paddedUrl)).status, 404);
  });

  await t.test('narinfo fields that disagree with the stored NAR', async () => {
    const up = await makeUpload('fields', 'payload');
    assert.equal((await put(server, up.url, up.file)).status, 201);
    const wrongHash = `sha256:${encodeNix32(sha(Buffer.from('nope')))}`;
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ NarHash: wrongHash }, /^field NarHash: the narinfo says sha256:\S+ but the uploaded NAR \S+ has sha256:/],
      [{ NarSize: String(up.nar.length + 8) }, /^field NarSize: the narinfo says \d+ but the uploaded NAR \S+ has \d+/],
      [{ FileSize: '1' }, /^field FileSize: the narinfo says 1 /],
      [{ FileHash: wrongHash }, /^field FileHash: /],
      [{ Compression: 'xz' }, /^field Compression: the narinfo says xz /],
    ];
    for (const [overrides, message] of cases) {
      await expectRefusal(await put(server, `${up.hashPart}.narinfo`, up.narinfo(overrides)), 422, message);
      assert.equal((await get(server, `${up.hashPart}.narinfo`)).status, 404, JSON.stringify(overrides));
    }
  });

  await t.test('a reference missing from the cache, a StorePath that does not match the URL, a NAR never uploaded', async () => {
    const up = await makeUpload('refs', 'r', [`${randomHashPart()}-absent`]);
    await put(server, up.url, up.file);
    await expectRefusal(await put(server, `${up.hashPart}.narinfo`, up.narinfo()), 409, /^field References: not in cache main: \S+-absent; upload references first/);
    const self = await makeUpload('self', 's');
    await put(server, self.url, self.file);
    const selfRef = self.narinfo({ References: `${self.hashPart}-self` });
    assert.equal((await put(server, `${self.hashPart}.narinfo`, selfRef)).status, 201, 'a self-reference needs nothing else');

    const other = randomHashPart();
    await expectRefusal(await put(server, `${other}.narinfo`, up.narinfo({ References: '' })), 400, /^field StorePath: \S+-refs does not match the URL's \S+\.narinfo/);
    const ghost = await makeUpload('ghost', 'never uploaded');
    await expectRefusal(await put(server, `${ghost.hashPart}.narinfo`, ghost.narinfo()), 409, /^field URL: nar\/\S+ has not been uploaded to cache main/);
    for (const h of [up.hashPart, other, ghost.hashPart]) assert.equal((await get(server, `${h}.narinfo`)).status, 404);
  });

  await t.test('a malformed narinfo names the line and field', async () => {
    const up = await makeUpload('bad', 'b');
    await expectRefusal(await put(server, `${up.hashPart}.narinfo`, up.narinfo().replace('NarSize: ', 'NarSize:')), 400, /^narinfo line 7, field NarSize: expected exactly one space after the colon/);
  });

  await t.test('GET and HEAD: ranges, no Content-Encoding, HEAD without a body', async () => {
    const up = await makeUpload('dl', 'download me '.repeat(100));
    await put(server, up.url, up.file);
    const whole = await get(server, up.url);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.equal(whole.headers.get('content-encoding'), null);
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), up.file);
    const part = await get(server, up.url, { headers: { Range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 10-19/${up.file.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), up.file.subarray(10, 20));
    const beyond = await get(server, up.url, { headers: { Range: `bytes=${up.file.length}-` } });
    assert.equal(beyond.status, 416);
    await beyond.arrayBuffer();
    const head = await rawRequest(server, 'HEAD', `/main/${up.url}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(up.file.length));
    assert.equal(head.body.length, 0);
  });

  await t.test('paths that try to leave the cache are refused with 400', async () => {
    for (const path of ['/main/nar/..%2f..%2fadmin-token', '/main/..%2F..%2Fetc%2Fpasswd', '/main/nar/%2e%2e', '/main/log/..', '/%2e%2e/main/nix-cache-info']) {
      const res = await rawRequest(server, 'GET', path);
      assert.equal(res.status, 400, `${path}: ${res.body}`);
    }
    const res = await rawRequest(server, 'GET', '/main/nar/../../admin-token');
    assert.ok(res.status === 400 || res.status === 404, `${res.status}`);
    assert.doesNotMatch(res.body.toString(), /ldr_/);
  });

  await t.test('storage failing answers 503 with Retry-After, never 404', async () => {
    const up = await makeUpload('down', 'd');
    await put(server, up.url, up.file);
    const store = join(server.dataDir, 'store');
    await rename(store, `${store}.away`);
    await symlink('store', store); // a symlink loop: every lookup fails with ELOOP
    try {
      const res = await get(server, up.url);
      assert.equal(res.status, 503, await res.clone().text());
      assert.equal(res.headers.get('retry-after'), '5');
      const upload = await put(server, `nar/${encodeNix32(sha(Buffer.from('new')))}.nar`, 'new');
      assert.equal(upload.status, 503);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'the process itself is alive');
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 503, 'but not ready: storage cannot answer');
      const state = (await ready.json()) as { index: string; storage: string };
      assert.equal(state.index, 'ok');
      assert.match(state.storage, /storage: cannot/);
    } finally {
      await rm(store);
      await rename(`${store}.away`, store);
    }
    assert.equal((await get(server, up.url)).status, 200);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200, 'ready again once storage answers');
  });

  await t.test('narinfo, listing and log bodies with a Content-Encoding are decoded', async () => {
    const up = await makeUpload('encoded', 'e');
    await put(server, up.url, up.file);
    const encoded = (path: string, body: string, encoding: string, data: Uint8Array) =>
      fetch(`${server.cacheUrl}/${path}`, {
        method: 'PUT',
        body: data,
        headers: { Authorization: `Bearer ${server.writeToken}`, 'Content-Encoding': encoding },
      }).then(async (res) => [res.status, await res.text(), body] as const);
    const narinfo = up.narinfo();
    const [status, text] = await encoded(`${up.hashPart}.narinfo`, narinfo, 'br', brotliCompressSync(narinfo));
    assert.equal(status, 201, text);
    assert.match(await (await get(server, `${up.hashPart}.narinfo`)).text(), new RegExp(`^StorePath: ${up.storePath}$`, 'm'));
    const listing = '{"version":1,"root":{"type":"regular","size":1,"narOffset":96}}';
    assert.equal((await encoded(`${up.hashPart}.ls`, listing, 'zstd', zstdCompressSync(listing)))[0], 201);
    assert.equal(await (await get(server, `${up.hashPart}.ls`)).text(), listing);
    const log = 'building...\ndone\n';
    assert.equal((await encoded(`log/${up.hashPart}-encoded.drv`, log, 'br', brotliCompressSync(log)))[0], 201);
    assert.equal(await (await get(server, `log/${up.hashPart}-encoded.drv`)).text(), log);
    const [badStatus, badText] = await encoded(`${up.hashPart}.ls`, listing, 'compress', Buffer.from(listing));
    assert.equal(badStatus, 415, badText);
  });

  await t.test('a public cache is readable without a token, but not writable', async () => {
    const created = await fetch(`${server.url}/api/v1/caches`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${server.adminToken}` },
      body: JSON.stringify({ name: 'open', public: true, priority: 10 }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const info = await fetch(`${server.url}/open/nix-cache-info`);
    assert.equal(await info.text(), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 10\n');
    assert.equal((await fetch(`${server.url}/open/${randomHashPart()}.narinfo`)).status, 404);
    const foreign = await fetch(`${server.url}/open/nix-cache-info`, { headers: { Authorization: 'Bearer ldr_from-another-server' } });
    assert.equal(foreign.status, 200, 'a token unknown here does not spoil a public read');
    assert.equal((await fetch(`${server.url}/open/nix-cache-info`, { method: 'PUT', body: 'x' })).status, 401);
    assert.equal((await put(server, '../open/nix-cache-info', 'x')).status, 403, 'a token of main cannot write to open');
  });

  await t.test('uploads need write permission', async () => {
    const up = await makeUpload('perm', 'p');
    const none = await fetch(`${server.cacheUrl}/${up.url}`, { method: 'PUT', body: up.file });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Basic realm="larder"');
    const res = await fetch(`${server.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${server.adminToken}` },
      body: JSON.stringify({ cache: 'main', permission: 'read' }),
    });
    const { token } = (await res.json()) as { token: string };
    assert.equal((await put(server, up.url, up.file, token)).status, 403);
    assert.equal((await put(server, up.url, up.file, 'ldr_bogus')).status, 401);
  });
});

function rawRequest(server: RunningLarder, method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path, headers: { Authorization: `Bearer ${server.writeToken}` } }, async (res) => {
      resolve({ status: res.statusCode!, headers: res.headers, body: await buffer(res) });
    });
    req.on('error', reject).end();
  });
}


test('bodies over the configured limits are refused with 413', async (t) => {
  const server = await startLarder(t, { env: { LARDER_MAX_BODY_SIZE: '1KiB', LARDER_MAX_NAR_SIZE: '4KiB' } });
  const up = await makeUpload('limits', 'l'.repeat(100));
  await put(server, up.url, up.file);
  const big = up.narinfo() + `X-Padding: ${'p'.repeat(2000)}\n`;
  const res = await put(server, `${up.hashPart}.narinfo`, big);
  assert.equal(res.status, 413, await res.clone().text());
  assert.match(await res.text(), /over this server's limit of 1024/);
  const nar = Buffer.alloc(8192, 1);
  const narRes = await put(server, `nar/${encodeNix32(sha(nar))}.nar`, nar);
  assert.equal(narRes.status, 413);
  assert.equal((await get(server, `nar/${encodeNix32(sha(nar))}.nar`)).status, 404);
});
