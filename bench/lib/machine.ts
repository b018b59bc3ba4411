// The machine a benchmark ran on, recorded beside its figures.

import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, release, totalmem } from 'node:os';

export interface Machine {
  readonly nproc: number;
  readonly cpu: string;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly node: string;
  readonly nix: string | null;
}

export function describeMachine(): Machine {
  const nix = spawnSync('nix', ['--version'], { encoding: 'utf8' });
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    nix: nix.status === 0 ? nix.stdout.trim() : null,
  };
}
