// A peer server written for a benchmark: a node script run in a child process
// on a port of its own, reachable at `url`, stopped with SIGTERM.

import type { ChildProcess } from 'node:child_process';

export class ScriptServer {
  readonly url: string;
  readonly #child: ChildProcess;

  protected constructor(url: string, child: ChildProcess) {
    this.url = url;
    this.#child = child;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGTERM');
    await exited;
  }
}
