// The local Nix store, asked through the `nix` command line: what a path's
// closure is, its NarHash, references and signatures, and what an installable
// names. Nothing here builds or downloads anything.

import { execFile } from 'node:child_process';
import { parseHash, type Hash } from '../nix/hash.ts';
import { parseStorePath } from '../nix/store-path.ts';

export interface LocalPathInfo {
  /** Full store path. */
  readonly path: string;
  readonly narHash: Hash;
  readonly narSize: number;
  /** Full store paths. */
  readonly references: readonly string[];
  readonly deriver?: string;
  readonly signatures: readonly string[];
  readonly ca?: string;
}

export class NixCommandError extends Error {
  /** What nix itself said (its `error:` lines), when it ran and failed. */
  readonly detail: string | undefined;
  constructor(message: string, detail?: string) {
    super(message);
    this.name = 'NixCommandError';
    this.detail = detail;
  }
}

/** Arguments per nix invocation, well below the kernel's argument size limit. */
const BATCH = 1000;

export class LocalNix {
  readonly storeDir: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(options: { storeDir?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.storeDir = options.storeDir ?? '/nix/store';
    this.env = { ...process.env, ...options.env };
  }

  private run(command: string, args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(command, args, { env: this.env, maxBuffer: 1024 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return reject(new NixCommandError(`'${command}' is not installed or not on PATH`));
        const detail = stderr.trim().split('\n').filter((l) => l.startsWith('error')).join('; ') || stderr.trim() || error.message;
        reject(new NixCommandError(`${command} ${args.slice(0, 3).join(' ')}…: ${detail}`, detail));
      });
    });
  }

  private nix(args: readonly string[]): Promise<string> {
    return this.run('nix', ['--extra-experimental-features', 'nix-command flakes', ...args]);
  }

  /** Path infos, in batches; with `closure`, of everything the paths refer to as well. */
  async pathInfos(paths: readonly string[], closure = false): Promise<LocalPathInfo[]> {
    const infos = new Map<string, LocalPathInfo>();
    // To `nix path-info` a .drv means its outputs unless --derivation is given,
    // and --derivation turns an output into its .drv: so ask for each kind apart.
    const drvs = paths.filter((p) => p.endsWith('.drv'));
    const others = paths.filter((p) => !p.endsWith('.drv'));
    const batches = [
      ...chunks(drvs).map((batch) => ['--derivation', ...batch]),
      ...chunks(others),
    ];
    for (const batch of batches) {
      const args = ['path-info', '--json', '--sigs', ...(closure ? ['--recursive'] : []), ...batch];
      for (const raw of JSON.parse(await this.nix(args)) as RawPathInfo[]) {
        if (raw.valid === false) throw new NixCommandError(`${raw.path} is not valid in the local store`);
        infos.set(raw.path, toInfo(raw));
      }
    }
    return [...infos.values()];
  }

  /**
   * The "cache deployment" set of the given derivations: their requisites with
   * the outputs that exist locally (`nix-store -qR --include-outputs`).
   */
  async buildClosure(drvs: readonly string[]): Promise<string[]> {
    const out = new Set<string>();
    for (let i = 0; i < drvs.length; i += BATCH) {
      const text = await this.run('nix-store', ['--query', '--requisites', '--include-outputs', ...drvs.slice(i, i + BATCH)]);
      for (const line of text.split('\n')) if (line) out.add(line);
    }
    return [...out];
  }

  /** The deriver of each path that has one recorded (and still present). */
  async derivers(paths: readonly string[]): Promise<string[]> {
    const drvs = new Set<string>();
    for (const info of await this.pathInfos(paths)) {
      if (info.deriver && (await this.isValid(info.deriver))) drvs.add(info.deriver);
    }
    return [...drvs];
  }

  /** The outputs of derivations that exist in the local store. */
  async existingOutputs(drvs: readonly string[]): Promise<string[]> {
    const outputs: string[] = [];
    for (const batch of chunks(drvs)) {
      for (const line of (await this.run('nix-store', ['--query', '--outputs', ...batch])).split('\n')) {
        if (line && (await this.isValid(line))) outputs.push(line);
      }
    }
    return outputs;
  }

  async isValid(path: string): Promise<boolean> {
    return this.run('nix-store', ['--check-validity', path]).then(
      () => true,
      () => false,
    );
  }

  /** Store paths as they are; anything else (`.#pkg`, `nixpkgs#hello`) resolved by nix, without building. */
  async resolve(installables: readonly string[], derivations: boolean): Promise<string[]> {
    const paths: string[] = [];
    for (const installable of installables) {
      if (installable.startsWith(this.storeDir + '/')) {
        parseStorePath(installable, this.storeDir);
        paths.push(installable);
        continue;
      }
      const args = ['path-info', ...(derivations ? ['--derivation'] : []), installable];
      try {
        paths.push(...(await this.nix(args)).split('\n').filter(Boolean));
      } catch (error) {
        if (!(error instanceof NixCommandError) || error.detail === undefined) throw error;
        throw new NixCommandError(`'${installable}' is not a store path, and nix could not resolve it as an installable: ${error.detail}`, error.detail);
      }
    }
    return paths;
  }

  /** The public keys this Nix trusts (`trusted-public-keys`). */
  async trustedPublicKeys(): Promise<string[]> {
    const config = JSON.parse(await this.nix(['show-config', '--json'])) as Record<string, { value: unknown }>;
    const value = config['trusted-public-keys']?.value;
    return Array.isArray(value) ? value.filter((k): k is string => typeof k === 'string') : [];
  }
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += BATCH) out.push(items.slice(i, i + BATCH));
  return out;
}

interface RawPathInfo {
  path: string;
  valid?: boolean;
  narHash: string;
  narSize: number;
  references?: string[];
  deriver?: string;
  signatures?: string[];
  ca?: string;
}

function toInfo(raw: RawPathInfo): LocalPathInfo {
  return {
    path: raw.path,
    narHash: parseHash(raw.narHash),
    narSize: raw.narSize,
    references: raw.references ?? [],
    ...(raw.deriver && { deriver: raw.deriver }),
    signatures: raw.signatures ?? [],
    ...(raw.ca && { ca: raw.ca }),
  };
}
