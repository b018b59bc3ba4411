// docs/configuration.md is generated from the configuration schema; this fails
// when a setting was added or changed without regenerating it.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { envName, SETTINGS } from '../../src/config/config.ts';
import { CONFIG_REFERENCE_PATH, configReference } from '../../scripts/config-reference.ts';

test('docs/configuration.md is what scripts/config-reference.ts generates (run it after changing a setting)', async () => {
  const committed = await readFile(CONFIG_REFERENCE_PATH, 'utf8');
  assert.ok(committed === configReference(), 'docs/configuration.md is out of date: run `node scripts/config-reference.ts`');
});

test('the reference lists every setting with its variable, and the words of each setting that takes a few', () => {
  const text = configReference();
  for (const [name, parser] of Object.entries(SETTINGS)) {
    const row = text.split('\n').find((line) => line.startsWith(`| \`${name}\``));
    assert.ok(row, `a row for ${name}`);
    assert.ok(row.includes(`\`${envName(name)}\``), `${name}: its variable`);
    for (const choice of (parser as { choices?: string[] }).choices ?? []) assert.ok(row.includes(`\`${choice}\``), `${name}: ${choice}`);
  }
});
