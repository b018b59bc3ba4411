// The lines a user adds to nix.conf and netrc to use a larder cache. Nix sends
// netrc credentials as Basic auth; larder reads the token from the password.

export interface CacheAccess {
  /** The cache's URL, e.g. http://cache.example.org:8080/main */
  readonly url: string;
  readonly publicKeys: readonly string[];
  readonly token?: string;
  readonly netrcFile: string;
}

export function nixConfLines(access: CacheAccess): string[] {
  const lines = [`extra-substituters = ${access.url}`, `extra-trusted-public-keys = ${access.publicKeys.join(' ')}`];
  if (access.token !== undefined) lines.push(`netrc-file = ${access.netrcFile}`);
  return lines;
}

/** curl matches netrc entries by host name alone, without the port. */
export function netrcLine(url: string, token: string): string {
  return `machine ${new URL(url).hostname.replace(/^\[|\]$/g, '')} password ${token}`;
}

export function flakeNixConfig(access: CacheAccess): string {
  return [
    'nixConfig = {',
    `  extra-substituters = [ ${JSON.stringify(access.url)} ];`,
    `  extra-trusted-public-keys = [ ${access.publicKeys.map((k) => JSON.stringify(k)).join(' ')} ];`,
    '};',
  ].join('\n');
}

// Merging into existing files, for `larder use --write`: what is there already
// stays, so that adding one cache never breaks another.

/** Settings whose values accumulate across lines (Nix appends `extra-*` settings). */
function accumulates(key: string): boolean {
  return key.startsWith('extra-');
}

function linesOf(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

interface SettingLine {
  readonly indent: string;
  readonly key: string;
  readonly values: string[];
  /** From `#` on, which Nix ignores. */
  readonly comment: string;
}

/** A `key = value…` line as Nix reads it: `#` starts a comment, `=` stands alone. */
function parseSetting(line: string): SettingLine | undefined {
  const hash = line.indexOf('#');
  const content = hash < 0 ? line : line.slice(0, hash);
  const tokens = content.trim().split(/\s+/);
  if (tokens.length < 2 || tokens[1] !== '=') return undefined;
  return { indent: /^\s*/.exec(line)![0], key: tokens[0]!, values: tokens.slice(2), comment: hash < 0 ? '' : line.slice(hash) };
}

function formatSetting(setting: SettingLine): string {
  const line = `${setting.indent}${setting.key} = ${setting.values.join(' ')}`;
  return setting.comment ? `${line} ${setting.comment}` : line;
}

/** The value a nix.conf text gives `key` (its last line wins), if any. */
export function nixConfSetting(text: string, key: string): string | undefined {
  let value: string | undefined;
  for (const line of linesOf(text)) {
    const setting = parseSetting(line);
    if (setting?.key === key) value = setting.values.join(' ');
  }
  return value;
}

/**
 * `existing` nix.conf text with `settings` (`key = value` lines) merged in:
 * values of accumulating settings are appended to the key's last line unless
 * present already; any other setting is set in place; missing keys are added
 * at the end. Every other line is kept as it was.
 */
export function mergeNixConf(existing: string, settings: readonly string[]): string {
  const lines = linesOf(existing);
  for (const text of settings) {
    const wanted = parseSetting(text);
    if (!wanted) throw new Error(`not a nix.conf setting: ${text}`);
    const at = lines.flatMap((line, i) => (parseSetting(line)?.key === wanted.key ? [i] : []));
    const last = at.at(-1);
    if (last === undefined) {
      lines.push(formatSetting(wanted));
    } else if (accumulates(wanted.key)) {
      const present = new Set(at.flatMap((i) => parseSetting(lines[i]!)!.values));
      const added = wanted.values.filter((v) => !present.has(v));
      const setting = parseSetting(lines[last]!)!;
      if (added.length > 0) lines[last] = formatSetting({ ...setting, values: [...setting.values, ...added] });
    } else {
      const setting = parseSetting(lines[last]!)!;
      if (setting.values.join(' ') !== wanted.values.join(' ')) lines[last] = formatSetting({ ...setting, values: wanted.values });
    }
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** The first keyword of a netrc line and the name after it: `machine host`, `default`, `macdef name`. */
function netrcKeyword(line: string): { keyword: string; name: string | undefined } | undefined {
  const [keyword, name] = line.trim().split(/\s+/);
  return keyword === 'machine' || keyword === 'default' || keyword === 'macdef' ? { keyword, name } : undefined;
}

/**
 * `existing` netrc text with `entry` (a one-line `machine host …` entry) in
 * place of any entry for the same machine, which may span several lines.
 * Other entries and comments are kept; a new entry goes before `default`,
 * since the first matching entry wins.
 */
export function mergeNetrc(existing: string, entry: string): string {
  const machine = netrcKeyword(entry)?.name;
  if (netrcKeyword(entry)?.keyword !== 'machine' || machine === undefined) throw new Error(`not a netrc machine entry: ${entry}`);
  const out: string[] = [];
  let placed = false;
  let dropping = false;
  let inMacro = false;
  for (const line of linesOf(existing)) {
    // A macro body runs to the next blank line and may hold any words.
    if (inMacro) {
      inMacro = line.trim() !== '';
      if (!dropping) out.push(line);
      continue;
    }
    const keyword = netrcKeyword(line);
    if (keyword?.keyword === 'macdef') inMacro = true;
    else if (keyword) dropping = keyword.keyword === 'machine' && keyword.name === machine;
    if (!placed && (dropping || keyword?.keyword === 'default')) {
      out.push(entry);
      placed = true;
    }
    if (dropping && line.trim() !== '' && !line.trim().startsWith('#')) continue;
    out.push(line);
  }
  if (!placed) out.push(entry);
  return `${out.join('\n')}\n`;
}
