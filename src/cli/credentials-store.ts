// Which larder server the CLI talks to, and with which token: flags, else
// environment, else what `larder login` saved in
// $XDG_CONFIG_HOME/larder/config.json (a secret: mode 0600 in a 0700 directory).

import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { UserError } from './user-error.ts';

export interface SavedLogin {
  readonly server: string;
  readonly token: string;
}

export interface ServerChoice {
  readonly server: string;
  readonly token: string | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The XDG base directory for configuration (relative values are invalid per the spec). */
export function configHome(env: Env): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && isAbsolute(xdg)) return xdg;
  return join(env.HOME || homedir(), '.config');
}

export function loginFile(env: Env): string {
  return join(configHome(env), 'larder', 'config.json');
}

/** A server URL as the client uses it: http(s), no trailing slash. */
export function normalizeServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError(`'${text}' is not a URL; expected e.g. http://cache.example.org:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserError(`'${text}': expected an http:// or https:// URL`);
  if (url.search || url.hash) throw new UserError(`'${text}': expected a server URL without ?query or #fragment`);
  return url.href.replace(/\/+$/, '');
}

export async function loadLogin(env: Env): Promise<SavedLogin | undefined> {
  const file = loginFile(env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let saved: unknown;
  try {
    saved = JSON.parse(text);
  } catch {
    throw new UserError(`${file} is not valid JSON; run \`larder login\` again or delete it`);
  }
  const { server, token } = (saved ?? {}) as Partial<Record<string, unknown>>;
  if (typeof server !== 'string' || typeof token !== 'string') {
    throw new UserError(`${file} lacks a server and token; run \`larder login\` again or delete it`);
  }
  return { server, token };
}

export async function saveLogin(env: Env, login: SavedLogin): Promise<string> {
  const file = loginFile(env);
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir leaves an existing directory's mode alone; the directory is ours.
  await chmod(dir, 0o700);
  // Written aside and renamed, so the file is 0600 from birth and never half-written.
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, file);
  return file;
}

/** Forgets the saved login; the login it removed, if any. */
export async function removeLogin(env: Env): Promise<SavedLogin | undefined> {
  const saved = await loadLogin(env).catch(() => undefined);
  await rm(loginFile(env), { force: true });
  return saved;
}

/**
 * The server and token to use: `--server`/`--token`, else LARDER_SERVER /
 * LARDER_TOKEN, else the saved login. The saved token is only ever sent to
 * the server it was saved for.
 */
export async function resolveServer(options: { flags: { server?: string; token?: string }; env: Env }): Promise<ServerChoice> {
  const { flags, env } = options;
  const explicit = flags.server ?? (env.LARDER_SERVER || undefined);
  const explicitToken = flags.token ?? (env.LARDER_TOKEN || undefined);
  const saved = await loadLogin(env);
  if (explicit === undefined) {
    if (!saved) {
      throw new UserError(
        'no larder server given: pass --server URL --token TOKEN, set LARDER_SERVER and LARDER_TOKEN, or run `larder login URL` once',
      );
    }
    return { server: normalizeServerUrl(saved.server), token: explicitToken ?? saved.token };
  }
  const server = normalizeServerUrl(explicit);
  const savedToken = saved && normalizeServerUrl(saved.server) === server ? saved.token : undefined;
  return { server, token: explicitToken ?? savedToken };
}
