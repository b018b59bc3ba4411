// The log's formats and levels, request lines and internal errors, written to
// a stream the test reads.

import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { resolveConfig, type LogConfig } from '../../src/config/config.ts';
import { createLogger, textLine } from '../../src/observability/logger.ts';
import { Observability } from '../../src/observability/observability.ts';
import { logRequest, type ObservedRequest } from '../../src/observability/request-observer.ts';

function captured(config: LogConfig) {
  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  return { logger: createLogger(config, out), text: () => text };
}

const observed: ObservedRequest = {
  method: 'PUT',
  url: '/main/nar/x.nar.zst',
  route: 'nar',
  cache: 'main',
  status: 201,
  completed: true,
  bytesSent: 120,
  bytesReceived: 4567,
  durationMs: 12.34567,
  token: { id: 'a1b2c3', label: 'ci runner' },
  remote: '127.0.0.1',
};

test('a request line is one JSON object with the request, its outcome and the token label', () => {
  const log = captured({ level: 'info', format: 'json' });
  logRequest(log.logger, observed);
  const lines = log.text().trim().split('\n');
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(line.level, 'info');
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(line.pid, process.pid);
  assert.deepEqual(
    { ...line, time: undefined, pid: undefined },
    {
      level: 'info',
      time: undefined,
      pid: undefined,
      method: 'PUT',
      url: '/main/nar/x.nar.zst',
      route: 'nar',
      cache: 'main',
      status: 201,
      bytesSent: 120,
      bytesReceived: 4567,
      durationMs: 12.346,
      token: 'ci runner',
      tokenId: 'a1b2c3',
      remote: '127.0.0.1',
      msg: 'PUT /main/nar/x.nar.zst 201',
    },
  );
});

test('an answer cut short or a 5xx is a warning; below the configured level nothing is written', () => {
  const log = captured({ level: 'warn', format: 'json' });
  logRequest(log.logger, observed);
  assert.equal(log.text(), '', 'info dropped at level warn');
  logRequest(log.logger, { ...observed, status: 200, completed: false, token: undefined, cache: undefined });
  logRequest(log.logger, { ...observed, status: undefined, completed: false });
  logRequest(log.logger, { ...observed, status: 503 });
  const lines = log.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => [l.level, l.status, l.aborted, l.cache, l.token]),
    [
      ['warn', 200, true, undefined, undefined],
      ['warn', null, true, 'main', 'ci runner'],
      ['warn', 503, undefined, 'main', 'ci runner'],
    ],
  );
  const silent = captured({ level: 'silent', format: 'json' });
  logRequest(silent.logger, { ...observed, status: 500 });
  assert.equal(silent.text(), '');
});

test('text format: one readable line per event, values with spaces quoted, a stack indented below', () => {
  const log = captured({ level: 'info', format: 'text' });
  logRequest(log.logger, observed);
  assert.match(
    log.text(),
    /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO PUT \/main\/nar\/x\.nar\.zst 201 method=PUT url=\/main\/nar\/x\.nar\.zst route=nar cache=main status=201 bytesSent=120 bytesReceived=4567 durationMs=12\.346 token="ci runner" tokenId=a1b2c3 remote=127\.0\.0\.1\n$/,
  );
  const error = new Error('boom');
  const rendered = textLine(JSON.stringify({ level: 'error', time: 'T', msg: 'internal error', err: { type: 'Error', message: 'boom', stack: error.stack } }));
  const [head, ...stack] = rendered.trimEnd().split('\n');
  assert.equal(head, 'T ERROR internal error');
  assert.match(stack[0]!, /^ {4}Error: boom$/);
  assert.ok(stack.length > 1 && stack.slice(1).every((l) => /^ {4}\s*at /.test(l)), rendered);
  assert.equal(textLine('not json'), 'not json\n');
});

test("an internal error is logged with its stack and the request, never a client's credentials", () => {
  const log = captured({ level: 'info', format: 'json' });
  const observability = new Observability(resolveConfig({}), 'alone', log.logger);
  const req = { method: 'GET', url: '/main/nix-cache-info', headers: { authorization: 'Bearer ldr_secret' } } as unknown as IncomingMessage;
  observability.internalError(req, new TypeError('cannot read properties of undefined'));
  const line = JSON.parse(log.text()) as { level: string; msg: string; method: string; url: string; err: { type: string; message: string; stack: string } };
  assert.equal(line.level, 'error');
  assert.equal(line.msg, 'internal error on GET /main/nix-cache-info');
  assert.deepEqual([line.method, line.url, line.err.type, line.err.message], ['GET', '/main/nix-cache-info', 'TypeError', 'cannot read properties of undefined']);
  assert.match(line.err.stack, /^TypeError: cannot read properties of undefined\n\s+at /);
  assert.doesNotMatch(log.text(), /ldr_secret|Bearer/);
});
