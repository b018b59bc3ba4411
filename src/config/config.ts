// larder's settings: defaults, then larder.toml, then LARDER_* environment
// variables, then command-line flags; each later source wins. Every problem
// names its source and field.

import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parse as parseToml } from 'smol-toml';

export interface ServerConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly dataDir: string;
  readonly workers: number;
  /** The URL clients use to reach this server, when it differs from the listen address (a proxy in front). */
  readonly publicUrl: string | undefined;
  readonly storeDir: string;
  readonly maxNarSize: number;
  readonly maxBodySize: number;
  readonly keyNamePrefix: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

/** Each setting: its name in larder.toml (kebab-case); its variable is LARDER_ + upper snake case. */
const FIELDS = ['listen', 'data-dir', 'workers', 'public-url', 'store-dir', 'max-nar-size', 'max-body-size', 'key-name-prefix'] as const;
type Field = (typeof FIELDS)[number];

export const envName = (field: Field) => `LARDER_${field.toUpperCase().replace(/-/g, '_')}`;

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/;
const UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

export function parseSize(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  const match = typeof value === 'string' ? SIZE.exec(value.trim()) : null;
  if (!match) throw new ConfigError(`${where}: expected a size such as 1048576, "512MiB" or "64GiB", got ${JSON.stringify(value)}`);
  return Math.floor(Number(match[1]) * UNITS[match[2] ?? 'B']!);
}

export function parseListen(value: unknown, where: string): { host: string; port: number } {
  const match = typeof value === 'string' ? /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim()) : null;
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ConfigError(`${where}: expected HOST:PORT such as 127.0.0.1:8080 or [::]:8080, got ${JSON.stringify(value)}`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

function parseWorkers(value: unknown, where: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 256) {
    throw new ConfigError(`${where}: expected a whole number of processes from 1 to 256, got ${JSON.stringify(value)}`);
  }
  return n;
}

function parseString(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new ConfigError(`${where}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function parsePublicUrl(value: unknown, where: string): string {
  const text = parseString(value, where).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+(\/.*)?$/.test(text)) throw new ConfigError(`${where}: expected an http(s) URL, got ${JSON.stringify(value)}`);
  return text;
}

function defaultKeyPrefix(): string {
  const host = hostname().split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]/g, '') || 'larder';
  return `${host}-`;
}

export const DEFAULTS = {
  listen: '127.0.0.1:8080',
  'data-dir': './larder-data',
  workers: 1,
  'store-dir': '/nix/store',
  'max-nar-size': '64GiB',
  'max-body-size': '16MiB',
} as const;

export interface ConfigSources {
  /** Parsed larder.toml, if any, and its path for messages. */
  readonly file?: { readonly path: string; readonly values: Raw };
  readonly env?: NodeJS.ProcessEnv;
  /** Command-line values by field name. */
  readonly flags?: Partial<Record<Field, unknown>>;
}

export function resolveConfig(sources: ConfigSources): ServerConfig {
  const file = sources.file?.values ?? {};
  for (const key of Object.keys(file)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      throw new ConfigError(`${sources.file!.path}: unknown setting '${key}'; known: ${FIELDS.join(', ')}`);
    }
  }
  const pick = <T>(field: Field, parse: (value: unknown, where: string) => T, fallback: () => T): T => {
    const flag = sources.flags?.[field];
    if (flag !== undefined) return parse(flag, `--${field}`);
    const env = sources.env?.[envName(field)];
    if (env !== undefined && env !== '') return parse(env, envName(field));
    if (file[field] !== undefined) return parse(file[field], `${sources.file!.path}: ${field}`);
    return fallback();
  };
  return {
    listen: pick('listen', parseListen, () => parseListen(DEFAULTS.listen, 'default')),
    dataDir: pick('data-dir', parseString, () => DEFAULTS['data-dir']),
    workers: pick('workers', parseWorkers, () => DEFAULTS.workers),
    publicUrl: pick('public-url', parsePublicUrl, () => undefined),
    storeDir: pick('store-dir', parseString, () => DEFAULTS['store-dir']),
    maxNarSize: pick('max-nar-size', parseSize, () => parseSize(DEFAULTS['max-nar-size'], 'default')),
    maxBodySize: pick('max-body-size', parseSize, () => parseSize(DEFAULTS['max-body-size'], 'default')),
    keyNamePrefix: pick('key-name-prefix', parseString, defaultKeyPrefix),
  };
}

export async function readConfigFile(path: string): Promise<{ path: string; values: Raw }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  try {
    return { path, values: parseToml(text) as Raw };
  } catch (error) {
    throw new ConfigError(`${path}: not valid TOML: ${(error as Error).message.split('\n')[0]}`);
  }
}

export async function loadConfig(options: { configFile?: string; env: NodeJS.ProcessEnv; flags: ConfigSources['flags'] }): Promise<ServerConfig> {
  const path = options.configFile ?? options.env.LARDER_CONFIG;
  const file = path ? await readConfigFile(path) : undefined;
  return resolveConfig({ ...(file && { file }), env: options.env, ...(options.flags && { flags: options.flags }) });
}
