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
  readonly mirror: MirrorConfig;
  readonly metrics: MetricsConfig;
  readonly log: LogConfig;
}

export interface MetricsConfig {
  /** Who may GET /metrics: anyone who reaches the port, a server-admin token, or nobody. */
  readonly access: 'public' | 'admin' | 'off';
}

export interface LogConfig {
  /** Lines below this level are dropped; request lines are info (warn for a 5xx or an answer cut short). */
  readonly level: 'info' | 'warn' | 'error' | 'silent';
  /** One JSON object per line, or one readable line per event. */
  readonly format: 'json' | 'text';
}

/** The pull-through proxy of caches with `mirror` on; absent values take the service's defaults. */
export interface MirrorConfig {
  /** How long a narinfo miss waits for the upstreams. */
  readonly narinfoTimeoutMs?: number;
  /** How long "no upstream has it" is remembered. */
  readonly negativeTtlMs?: number;
  /** A NAR download sending nothing for this long is given up. */
  readonly stallTimeoutMs?: number;
  /** Default: `<data-dir>/spool`. */
  readonly spoolDir?: string;
  /** Add the cache's signatures to upstream narinfos. */
  readonly sign?: boolean;
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

/** A parser of one of a few words; `choices` lists them for the configuration reference. */
const oneOf = <T extends string>(...choices: T[]): Parse<T> & { readonly choices: readonly T[] } =>
  Object.assign(
    (value: unknown, where: string): T => {
      if (typeof value === 'string' && (choices as string[]).includes(value)) return value as T;
      throw new ConfigError(`${where}: expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
    },
    { choices },
  );

/** Every setting, by its dotted name in larder.toml. */
export const SETTINGS = {
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
  'mirror.timeout': parseDuration,
  'mirror.negative-ttl': parseDuration,
  'mirror.stall-timeout': parseDuration,
  'mirror.spool-dir': parseString,
  'mirror.sign': parseBoolean,
  'metrics.access': oneOf('public', 'admin', 'off'),
  'log.level': oneOf('info', 'warn', 'error', 'silent'),
  'log.format': oneOf('json', 'text'),
} as const satisfies Record<string, Parse<unknown>>;

export type Setting = keyof typeof SETTINGS;

export interface SettingDoc {
  /** The default as a person writes it, or where it comes from. */
  readonly default: string;
  /** What the value may be; the choices of a setting with a few words are listed from its parser. */
  readonly accepts?: string;
  readonly meaning: string;
}

/** Every setting in words: docs/configuration.md is generated from this and SETTINGS (scripts/config-reference.ts). */
export const SETTING_DOCS = {
  listen: { default: '127.0.0.1:8080', accepts: '`HOST:PORT`; `[::]:8080` for IPv6, `0.0.0.0:8080` for every IPv4 address', meaning: 'Address and port the server listens on.' },
  'data-dir': { default: './larder-data', accepts: 'a directory', meaning: 'Where the embedded defaults keep the index, the blobs and `admin-token`.' },
  workers: { default: '1', accepts: '1 to 256', meaning: 'Processes serving the same port (node:cluster); about one per core.' },
  'public-url': { default: 'from `listen`', accepts: 'an http(s) URL', meaning: 'The URL clients use, when a proxy or load balancer is in front; printed lines use it.' },
  'store-dir': { default: '/nix/store', accepts: 'a directory path', meaning: "The clients' Nix store directory." },
  'max-nar-size': { default: '64GiB', accepts: 'a size: bytes, or `512MiB`, `64GiB`', meaning: 'Largest (compressed) NAR accepted.' },
  'max-body-size': { default: '16MiB', accepts: 'a size', meaning: 'Largest narinfo, listing or build log accepted.' },
  'key-name-prefix': { default: '`<hostname>-`', accepts: 'a string', meaning: "Prefix of new signing keys' names, so that two servers' keys never collide in a client's trusted keys." },
  'storage.type': { default: 'filesystem', meaning: 'Where NARs, narinfos, listings and logs are kept: a directory, or an S3-compatible bucket.' },
  'storage.path': { default: '`<data-dir>/store`', accepts: 'a directory', meaning: 'The directory (filesystem); each cache is a standard binary-cache layout under `<path>/<cache>/`.' },
  'storage.endpoint': { default: 'AWS S3 for the region', accepts: 'an http(s) URL', meaning: 'The S3-compatible service (s3).' },
  'storage.region': { default: 'us-east-1', accepts: 'a string', meaning: "The bucket's region (s3)." },
  'storage.bucket': { default: 'none: required with s3', accepts: 'a bucket name', meaning: 'The bucket (s3).' },
  'storage.prefix': { default: 'none: the top of the bucket', accepts: 'a key prefix', meaning: 'Keys go under `<prefix>/<cache>/` in the bucket (s3).' },
  'storage.path-style': { default: 'false', accepts: 'true or false', meaning: 'Address the bucket in the URL path rather than the host name (MinIO, Swift, Ceph) (s3).' },
  'storage.access-key-id': { default: 'the AWS credential chain', accepts: 'a string', meaning: 'With `secret-access-key`, or neither (s3). Better in the environment than in the file.' },
  'storage.secret-access-key': { default: 'the AWS credential chain', accepts: 'a string', meaning: 'With `access-key-id`, or neither (s3).' },
  'storage.storage-class': { default: "the bucket's", accepts: 'an S3 storage class such as `STANDARD_IA`', meaning: 'Storage class of new objects (s3).' },
  'index.type': { default: 'sqlite', meaning: 'The metadata index: an embedded SQLite file, or PostgreSQL (needed for several hosts).' },
  'index.path': { default: '`<data-dir>/index.sqlite`', accepts: 'a file', meaning: 'The SQLite file (sqlite).' },
  'index.url': { default: 'none: required with postgres', accepts: '`postgres://user:password@host:5432/database`', meaning: 'The PostgreSQL database (postgres). Better in the environment than in the file.' },
  'gc.interval': { default: '1h', accepts: 'a duration (`45s`, `10m`, `1h`, `30d`) or `off`', meaning: 'How often the server collects garbage in every cache (one replica at a time); `off`: only `larder gc`.' },
  'gc.upload-grace': { default: '1h', accepts: 'a duration', meaning: 'NARs still waiting for their narinfo, and stray files, younger than this are kept.' },
  'mirror.timeout': { default: '3s', accepts: 'a duration', meaning: 'How long a narinfo a mirroring cache lacks waits for its upstreams (asked at once) before answering 404.' },
  'mirror.negative-ttl': { default: '30s', accepts: 'a duration', meaning: 'How long "no upstream has this path" is remembered before the upstreams are asked again.' },
  'mirror.stall-timeout': { default: '30s', accepts: 'a duration', meaning: 'A NAR download from an upstream that sends nothing for this long is given up (clients see a broken transfer).' },
  'mirror.spool-dir': { default: '`<data-dir>/spool`', accepts: 'a directory', meaning: 'Where NARs being fetched from upstreams are spooled for the clients following them (files are unlinked at once).' },
  'mirror.sign': { default: 'true', accepts: '`true` or `false`', meaning: "Add the cache's own signatures to narinfos served from upstreams (upstream signatures are kept either way), so clients may trust larder's key alone." },
  'metrics.access': { default: 'public', meaning: 'Who may read `/metrics`: anyone who reaches the port, only a server-admin token (Bearer or Basic), or nobody (404).' },
  'log.level': { default: 'info', meaning: 'Lines below it are dropped: request lines are `info` (`warn` for a 5xx or an answer cut short), internal errors `error`; `silent` logs nothing.' },
  'log.format': { default: 'json', meaning: 'Log lines on standard output: one JSON object each, or `text`, one readable line each.' },
} as const satisfies Record<Setting, SettingDoc>;
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
    metrics: { access: get('metrics.access') ?? 'public' },
    mirror: mirrorConfig(get),
    log: { level: get('log.level') ?? 'info', format: get('log.format') ?? 'json' },
  };
}

type Getter = <S extends Setting>(setting: S) => Value<S> | undefined;

function mirrorConfig(get: Getter): MirrorConfig {
  const values = {
    narinfoTimeoutMs: get('mirror.timeout'),
    negativeTtlMs: get('mirror.negative-ttl'),
    stallTimeoutMs: get('mirror.stall-timeout'),
    spoolDir: get('mirror.spool-dir'),
    sign: get('mirror.sign'),
  };
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

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
