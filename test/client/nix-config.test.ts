// Merging larder's lines into existing nix.conf and netrc files: what others
// put there survives, and merging twice changes nothing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeNetrc, mergeNixConf, nixConfLines, nixConfSetting } from '../../src/client/nix-config.ts';

const ACCESS = {
  url: 'http://cache.example.org:8080/main',
  publicKeys: ['main-1:AAAA', 'main-2:BBBB'],
  token: 'ldr_secret',
  netrcFile: '/etc/nix/netrc',
};
const LINES = nixConfLines(ACCESS);

test('into an empty nix.conf the lines go as they are', () => {
  assert.equal(mergeNixConf('', LINES), `${LINES.join('\n')}\n`);
});

test('values are appended to existing extra-* lines; other lines stay as they were', () => {
  const existing = [
    '# my settings',
    'substituters = https://cache.nixos.org',
    'extra-substituters = https://other.example # the team cache',
    '',
    'trusted-public-keys = cache.nixos.org-1:CCCC',
    '  extra-trusted-public-keys = other-1:DDDD',
    'experimental-features = nix-command flakes',
  ].join('\n');
  assert.equal(
    mergeNixConf(existing, LINES),
    [
      '# my settings',
      'substituters = https://cache.nixos.org',
      'extra-substituters = https://other.example http://cache.example.org:8080/main # the team cache',
      '',
      'trusted-public-keys = cache.nixos.org-1:CCCC',
      '  extra-trusted-public-keys = other-1:DDDD main-1:AAAA main-2:BBBB',
      'experimental-features = nix-command flakes',
      'netrc-file = /etc/nix/netrc',
      '',
    ].join('\n'),
  );
});

test('merging twice changes nothing, and values present on any line are not repeated', () => {
  const once = mergeNixConf('extra-substituters = https://other.example\n', LINES);
  assert.equal(mergeNixConf(once, LINES), once);

  const split = 'extra-trusted-public-keys = main-1:AAAA\nextra-trusted-public-keys = other-1:DDDD\n';
  const merged = mergeNixConf(split, ['extra-trusted-public-keys = main-1:AAAA main-2:BBBB']);
  assert.equal(merged, 'extra-trusted-public-keys = main-1:AAAA\nextra-trusted-public-keys = other-1:DDDD main-2:BBBB\n');
});

test('a single-valued setting is set in place, not repeated', () => {
  const existing = 'netrc-file = /old/netrc\nmax-jobs = 4\n';
  assert.equal(mergeNixConf(existing, ['netrc-file = /new/netrc']), 'netrc-file = /new/netrc\nmax-jobs = 4\n');
  assert.equal(mergeNixConf(existing, ['netrc-file = /old/netrc']), existing);
});

test('a file without a final newline gets one before new lines', () => {
  assert.equal(mergeNixConf('max-jobs = 4', ['netrc-file = /n']), 'max-jobs = 4\nnetrc-file = /n\n');
});

test('lines Nix does not read as settings are left alone', () => {
  // Nix wants `=` on its own: `key=value` is not the setting, and neither is a commented-out line.
  const existing = 'extra-substituters=https://x.example\n# extra-substituters = https://y.example\n';
  assert.equal(mergeNixConf(existing, [LINES[0]!]), `${existing}extra-substituters = http://cache.example.org:8080/main\n`);
});

test('nixConfSetting reads the value Nix would use', () => {
  const text = 'netrc-file = /a # first\nnetrc-file = /b\n# netrc-file = /c\n';
  assert.equal(nixConfSetting(text, 'netrc-file'), '/b');
  assert.equal(nixConfSetting(text, 'max-jobs'), undefined);
});

const ENTRY = 'machine cache.example.org password ldr_new';

test('netrc: the entry for the same machine is replaced, others kept in order', () => {
  const existing = 'machine a.example login me password one\nmachine cache.example.org password ldr_old\nmachine b.example password two\n';
  assert.equal(mergeNetrc(existing, ENTRY), `machine a.example login me password one\n${ENTRY}\nmachine b.example password two\n`);
});

test('netrc: an entry over several lines is replaced whole', () => {
  const existing = [
    'machine cache.example.org',
    '  login larder',
    '  password ldr_old',
    '',
    '# the git server',
    'machine git.example.org',
    '  password two',
    '',
  ].join('\n');
  assert.equal(mergeNetrc(existing, ENTRY), [ENTRY, '', '# the git server', 'machine git.example.org', '  password two', ''].join('\n'));
});

test('netrc: a new entry is added, before `default` since the first match wins', () => {
  assert.equal(mergeNetrc('', ENTRY), `${ENTRY}\n`);
  assert.equal(mergeNetrc('machine a.example password one', ENTRY), `machine a.example password one\n${ENTRY}\n`);
  assert.equal(
    mergeNetrc('machine a.example password one\ndefault login anonymous password x\n', ENTRY),
    `machine a.example password one\n${ENTRY}\ndefault login anonymous password x\n`,
  );
});

test('netrc: merging twice changes nothing; a machine word inside a macro is not an entry', () => {
  const once = mergeNetrc('machine a.example password one\n', ENTRY);
  assert.equal(mergeNetrc(once, ENTRY), once);
  const withMacro = 'machine ftp.example password x\nmacdef init\nmachine cache.example.org\n\nmachine b.example password y\n';
  assert.equal(mergeNetrc(withMacro, ENTRY), `${withMacro}${ENTRY}\n`);
});
