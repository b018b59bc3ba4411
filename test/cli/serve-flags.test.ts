// `larder serve` replaces itself once at start-up with the V8 flags its memory
// depends on (a small young generation; `gc` exposed for the garbage pacer),
// adding only those the user has not given, whether spelt with - or _.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { startLarder } from '../helpers/larder-server.ts';

async function nodeFlags(pid: number): Promise<string[]> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  return argv.slice(1, argv.findIndex((arg) => arg.endsWith('larder.ts')));
}

test('larder serve runs with --max-semi-space-size=2 and --expose-gc', async (t) => {
  const server = await startLarder(t);
  assert.deepEqual(await nodeFlags(server.pid), ['--max-semi-space-size=2', '--expose-gc']);
});

test('a flag the user gave, with either spelling, is not added again', async (t) => {
  const server = await startLarder(t, { env: { NODE_OPTIONS: '--expose_gc' } });
  assert.deepEqual(await nodeFlags(server.pid), ['--max-semi-space-size=2']);
});
