// An isolated, real Nix environment for end-to-end tests: Debian's nix-bin
// run as root in single-user mode, its own NIX_CONFIG and XDG cache, and
// builders of tiny derivations whose names carry a per-environment nonce so
// concurrent and repeated runs never share a store path.

import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export const servicesRequired = process.env.LARDER_REQUIRE_SERVICES === '1';

const nixAvailable = spawnSync('nix-store', ['--version'], { stdio: 'ignore' }).status === 0;

/**
 * Skips the test when nix is missing, with a visible reason; fails instead
 * when LARDER_REQUIRE_SERVICES=1 (CI), so a missing install cannot pass.
 */
export function skipWithoutNix(t: TestContext): boolean {
  if (nixAvailable) return false;
  if (servicesRequired) throw new Error('nix is not installed but LARDER_REQUIRE_SERVICES=1');
  t.skip('nix is not installed (apt-get install nix-bin)');
  return true;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface Derivation {
  /** Unique name within one buildClosure call; also the derivation's name suffix. */
  readonly name: string;
  /** Names of derivations in the same call whose outputs this output refers to. */
  readonly deps?: readonly string[];
  /** Names of derivations read while building but not referred to by the output: build-time only. */
  readonly buildOnly?: readonly string[];
  /** Bytes of payload in `$out/data` (or in `$out` itself for a file output). */
  readonly size?: number;
  /** Random (incompressible) payload instead of repetitive text. */
  readonly random?: boolean;
  /** A single file output instead of a directory; it can refer to deps too. */
  readonly file?: boolean;
}

export interface Built {
  readonly name: string;
  /** The output path. */
  readonly out: string;
  /** The .drv path. */
  readonly drv: string;
}

export class NixEnv {
  readonly dir: string;
  readonly nonce: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(dir: string, extraConfig: readonly string[], extraEnv: NodeJS.ProcessEnv = {}) {
    this.dir = dir;
    this.nonce = randomBytes(6).toString('hex');
    const config = [
      'experimental-features = nix-command flakes',
      'build-users-group =',
      'sandbox = false',
      'substituters =',
      'narinfo-cache-negative-ttl = 0',
      ...extraConfig,
    ];
    this.env = { ...process.env, ...extraEnv, NIX_CONFIG: config.join('\n'), XDG_CACHE_HOME: join(dir, 'xdg-cache') };
  }

  /**
   * Environment overrides with extra nix.conf lines and, by default, a fresh
   * narinfo disk cache (Nix caches what it uploaded, unsigned, for 30 days).
   */
  withConfig(extra: readonly string[], freshNarinfoCache = true): NodeJS.ProcessEnv {
    return {
      NIX_CONFIG: [this.env.NIX_CONFIG, ...extra].join('\n'),
      ...(freshNarinfoCache && { XDG_CACHE_HOME: join(this.dir, `xdg-${randomBytes(4).toString('hex')}`) }),
    };
  }

  /** Writes a netrc file with one token for a host and returns its path. */
  async netrc(url: string, token: string): Promise<string> {
    const file = join(this.dir, `netrc-${randomBytes(4).toString('hex')}`);
    await writeFile(file, `machine ${new URL(url).hostname} password ${token}\n`, { mode: 0o600 });
    return file;
  }

  /** Removes paths (and whatever else of their closures nothing refers to) from the local store. */
  async deleteLocally(paths: readonly string[]): Promise<void> {
    const closure = (await this.run('nix-store', ['--query', '--requisites', ...paths])).stdout.trim().split('\n');
    await this.run('nix-store', ['--delete', ...closure]);
  }

  async isValid(path: string): Promise<boolean> {
    return this.run('nix-store', ['--check-validity', path]).then(
      () => true,
      () => false,
    );
  }

  /** Runs a command in this environment; rejects with its stderr on a non-zero exit. */
  run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        command,
        args,
        { env: { ...this.env, ...options.env }, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
        (error, stdout, stderr) => {
          if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr || error.message}`));
          else resolve({ stdout, stderr });
        },
      );
      if (options.input !== undefined) child.stdin!.end(options.input);
    });
  }

  /** Builds derivations (listed dependencies first) and returns their paths in the same order. */
  async buildClosure(derivations: readonly Derivation[]): Promise<Built[]> {
    const expression = this.expression(derivations);
    const file = join(this.dir, `closure-${randomBytes(4).toString('hex')}.nix`);
    await writeFile(file, expression);
    const attrs = derivations.flatMap((d) => ['-A', attrName(d.name)]);
    const { stdout } = await this.run('nix-build', [file, '--no-out-link', ...attrs]);
    const outs = stdout.trim().split('\n');
    const drvs = (await this.run('nix-store', ['--query', '--deriver', ...outs])).stdout.trim().split('\n');
    return derivations.map((d, i) => ({ name: d.name, out: outs[i]!, drv: drvs[i]! }));
  }

  /** A chain n0 → n1 → … where each refers to the one before. */
  chain(length: number, size = 64): Derivation[] {
    return Array.from({ length }, (_, i) => ({ name: `n${i}`, size, ...(i > 0 && { deps: [`n${i - 1}`] }) }));
  }

  private expression(derivations: readonly Derivation[]): string {
    const bindings = derivations.map((d) => {
      const size = d.size ?? 64;
      const payload = d.random
        ? `head -c ${size} /dev/urandom`
        : `yes '${d.name} ${this.nonce}' | head -c ${size}`;
      const refs = (d.deps ?? []).map((dep) => `\${${attrName(dep)}}`).join(' ');
      // Reading a build input without writing its path into $out keeps it out of the run-time closure.
      const reads = (d.buildOnly ?? []).map((dep) => `wc -c < \${${attrName(dep)}}/data > /dev/null; `).join('');
      const script = d.file
        ? `${reads}{ echo '${refs}'; ${payload}; } > $out`
        : `${reads}mkdir $out; echo '${refs}' > $out/deps; ${payload} > $out/data`;
      return `  ${attrName(d.name)} = derivation {
    name = "${d.name}-${this.nonce}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" ${JSON.stringify(script)} ];
  };`;
    });
    return `rec {\n${bindings.join('\n')}\n}\n`;
  }
}

function attrName(name: string): string {
  return `d_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** A fresh environment whose temp directory is removed after the test. */
export async function nixEnv(t: TestContext, extraConfig: readonly string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Promise<NixEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-nix-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return new NixEnv(dir, extraConfig, extraEnv);
}
