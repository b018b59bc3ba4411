// larder's settings: defaults, then larder.toml, then LARDER_* environment
// variables, then command-line flags; each later source wins. Every problem
// names its source and field. A setting `a.b` in larder.toml (`b` in table
// `[a]`) is LARDER_A_B in the environment.

import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parse as parseToml } from 'smol-toml';
import { parseDurationValue, parseSizeValue } from '../services/units.ts';

export interface FilesystemStorageConfig {
  readonly type: 'filesystem';
  /** Default: `<data-dir>/store`. */
  readonly path: string;
}

export interface S3StorageConfig {
  readonly type: 's3';
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly pathStyle: boolean;
  /** Both or neither: without them the usual AWS credential chain applies. */
  readonly accessKeyId: string | undefined;
  readonly secretAccessKey: string | undefined;
  readonly storageClass: string | undefined;
}

export type StorageConfig = FilesystemStorageConfig | S3StorageConfig;

export type IndexConfig = { readonly type: 'sqlite'; readonly path: string } | { readonly type: 'postgres'; readonly url: string };

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
  readonly storage: StorageConfig;
  readonly index: IndexConfig;
  readonly gc: GcConfig;
}

export interface GcConfig {
  /** How often the server collects garbage in every cache; null: never on its own. */
  readonly intervalMs: number | null;
  /** NARs uploaded without a narinfo yet, and stray files, younger than this are kept. */
  readonly uploadGraceMs: number;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Parse<T> = (value: unknown, where: string) => T;

export const parseSize: Parse<number> = (value, where) => {
  const bytes = parseSizeValue(value);
  if (bytes === undefined) throw new ConfigError(`${where}: expected a size such as 1048576, "512MiB" or "64GiB", got ${JSON.stringify(value)}`);
  return bytes;
};

export const parseDuration: Parse<number> = (value, where) => {
  const ms = parseDurationValue(value);
  if (ms === undefined) throw new ConfigError(`${where}: expected a duration such as "45s", "10m", "1h" or "30d", got ${JSON.stringify(value)}`);
  return ms;
};

/** A duration, or "off" (0): a schedule that can be switched off. */
const parseInterval: Parse<number> = (value, where) => {
  if (value === 'off' || value === '0' || value === 0 || value === false || value === 'false') return 0;
  const ms = parseDurationValue(value);
  if (ms === undefined) throw new ConfigError(`${where}: expected a duration such as "10m" or "1h", or "off", got ${JSON.stringify(value)}`);
  return ms;
};

export const parseListen: Parse<{ host: string; port: number }> = (value, where) => {
  const match = typeof value === 'string' ? /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim()) : null;
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ConfigError(`${where}: expected HOST:PORT such as 127.0.0.1:8080 or [::]:8080, got ${JSON.stringify(value)}`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
};

const parseWorkers: Parse<number> = (value, where) => {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 256) {
    throw new ConfigError(`${where}: expected a whole number of processes from 1 to 256, got ${JSON.stringify(value)}`);
  }
  return n;
};

const parseString: Parse<string> = (value, where) => {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${where}: expected a non-empty string, got ${JSON.stringify(value)}`);
  return value;
};

const parseBoolean: Parse<boolean> = (value, where) => {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new ConfigError(`${where}: expected true or false, got ${JSON.stringify(value)}`);
};

const parseUrl: Parse<string> = (value, where) => {
  const text = parseString(value, where).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+(\/.*)?$/.test(text)) throw new ConfigError(`${where}: expected an http(s) URL, got ${JSON.stringify(value)}`);
  return text;
};

const oneOf =
  <T extends string>(...choices: T[]): Parse<T> =>
  (value, where) => {
    if (typeof value === 'string' && (choices as string[]).includes(value)) return value as T;
    throw new ConfigError(`${where}: expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  };

/** Every setting, by its dotted name in larder.toml. */
const SETTINGS = {
  listen: parseListen,
  'data-dir': parseString,
  workers: parseWorkers,
  'public-url': parseUrl,
  'store-dir': parseString,
  'max-nar-size': parseSize,
  'max-body-size': parseSize,
  'key-name-prefix': parseString,
  'storage.type': oneOf('filesystem', 's3'),
  'storage.path': parseString,
  'storage.endpoint': parseUrl,
  'storage.region': parseString,
  'storage.bucket': parseString,
  'storage.prefix': parseString,
  'storage.path-style': parseBoolean,
  'storage.access-key-id': parseString,
  'storage.secret-access-key': parseString,
  'storage.storage-class': parseString,
  'index.type': oneOf('sqlite', 'postgres'),
  'index.path': parseString,
  'index.url': parseString,
  'gc.interval': parseInterval,
  'gc.upload-grace': parseDuration,
} as const satisfies Record<string, Parse<unknown>>;

type Setting = keyof typeof SETTINGS;
type Value<S extends Setting> = ReturnType<(typeof SETTINGS)[S]>;

export const envName = (setting: string) => `LARDER_${setting.toUpperCase().replace(/[-.]/g, '_')}`;

function defaultKeyPrefix(): string {
  const host = hostname().split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]/g, '') || 'larder';
  return `${host}-`;
}

export interface ConfigSources {
  /** Parsed larder.toml, if any, and its path for messages. */
  readonly file?: { readonly path: string; readonly values: Record<string, unknown> };
  readonly env?: NodeJS.ProcessEnv;
  /** Command-line values by setting name. */
  readonly flags?: Partial<Record<Setting, unknown>>;
}

/** larder.toml's tables flattened to dotted names; unknown names are refused (a typo must not pass silently). */
function flattenFile(file: NonNullable<ConfigSources['file']>): Map<string, unknown> {
  const flat = new Map<string, unknown>();
  const walk = (table: Record<string, unknown>, prefix: string) => {
    for (const [key, value] of Object.entries(table)) {
      const name = prefix + key;
      if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(name in SETTINGS)) {
        walk(value as Record<string, unknown>, `${name}.`);
      } else if (!(name in SETTINGS)) {
        throw new ConfigError(`${file.path}: unknown setting '${name}'; known: ${Object.keys(SETTINGS).join(', ')}`);
      } else {
        flat.set(name, value);
      }
    }
  };
  walk(file.values, '');
  return flat;
}

export function resolveConfig(sources: ConfigSources): ServerConfig {
  const file = sources.file ? flattenFile(sources.file) : new Map<string, unknown>();
  function get<S extends Setting>(setting: S): Value<S> | undefined {
    const parse = SETTINGS[setting] as Parse<Value<S>>;
    const flag = sources.flags?.[setting];
    if (flag !== undefined) return parse(flag, `--${setting}`);
    const env = sources.env?.[envName(setting)];
    if (env !== undefined && env !== '') return parse(env, envName(setting));
    if (file.has(setting)) return parse(file.get(setting), `${sources.file!.path}: ${setting}`);
    return undefined;
  }
  const dataDir = get('data-dir') ?? './larder-data';
  return {
    listen: get('listen') ?? { host: '127.0.0.1', port: 8080 },
    dataDir,
    workers: get('workers') ?? 1,
    publicUrl: get('public-url'),
    storeDir: get('store-dir') ?? '/nix/store',
    maxNarSize: get('max-nar-size') ?? 64 * 2 ** 30,
    maxBodySize: get('max-body-size') ?? 16 * 2 ** 20,
    keyNamePrefix: get('key-name-prefix') ?? defaultKeyPrefix(),
    storage: storageConfig(get, dataDir),
    index: indexConfig(get, dataDir),
    gc: { intervalMs: (get('gc.interval') ?? 60 * 60_000) || null, uploadGraceMs: get('gc.upload-grace') ?? 60 * 60_000 },
  };
}

type Getter = <S extends Setting>(setting: S) => Value<S> | undefined;

function storageConfig(get: Getter, dataDir: string): StorageConfig {
  if ((get('storage.type') ?? 'filesystem') === 'filesystem') {
    return { type: 'filesystem', path: get('storage.path') ?? `${dataDir}/store` };
  }
  const bucket = get('storage.bucket');
  if (!bucket) throw new ConfigError(`storage.bucket (${envName('storage.bucket')}) is required with storage.type = "s3"`);
  const accessKeyId = get('storage.access-key-id');
  const secretAccessKey = get('storage.secret-access-key');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError('storage.access-key-id and storage.secret-access-key go together (or leave both out for the AWS credential chain)');
  }
  return {
    type: 's3',
    endpoint: get('storage.endpoint'),
    region: get('storage.region') ?? 'us-east-1',
    bucket,
    prefix: (get('storage.prefix') ?? '').replace(/^\/+|\/+$/g, ''),
    pathStyle: get('storage.path-style') ?? false,
    accessKeyId,
    secretAccessKey,
    storageClass: get('storage.storage-class'),
  };
}

function indexConfig(get: Getter, dataDir: string): IndexConfig {
  if ((get('index.type') ?? 'sqlite') === 'sqlite') return { type: 'sqlite', path: get('index.path') ?? `${dataDir}/index.sqlite` };
  const url = get('index.url');
  if (!url) throw new ConfigError(`index.url (${envName('index.url')}) is required with index.type = "postgres"`);
  return { type: 'postgres', url };
}

export async function readConfigFile(path: string): Promise<{ path: string; values: Record<string, unknown> }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  try {
    return { path, values: parseToml(text) as Record<string, unknown> };
  } catch (error) {
    throw new ConfigError(`${path}: not valid TOML: ${(error as Error).message.split('\n')[0]}`);
  }
}

export async function loadConfig(options: { configFile?: string; env: NodeJS.ProcessEnv; flags: ConfigSources['flags'] }): Promise<ServerConfig> {
  const path = options.configFile ?? options.env.LARDER_CONFIG;
  const file = path ? await readConfigFile(path) : undefined;
  return resolveConfig({ ...(file && { file }), env: options.env, ...(options.flags && { flags: options.flags }) });
}
