// When a pushed path may be committed: each narinfo as soon as its NAR is up
// and its references are committed.

import type { Node } from '../../nix/closure-order.ts';

/**
 * Tracks which paths may be committed: a path is ready once its own upload is
 * done and every reference inside the push set has been committed.
 */
export class CommitGate<T extends Node> {
  private readonly waitingOn = new Map<string, Set<string>>();
  private readonly dependents = new Map<string, string[]>();
  private readonly uploaded = new Set<string>();

  constructor(nodes: readonly T[]) {
    const inSet = new Set(nodes.map((n) => n.path));
    for (const node of nodes) {
      const refs = new Set(node.references.filter((r) => r !== node.path && inSet.has(r)));
      this.waitingOn.set(node.path, refs);
      for (const ref of refs) {
        const list = this.dependents.get(ref) ?? [];
        list.push(node.path);
        this.dependents.set(ref, list);
      }
    }
  }

  /** Marks a path's NAR as uploaded; returns the paths now ready to commit. */
  uploadedPath(path: string): string[] {
    this.uploaded.add(path);
    return this.isReady(path) ? [path] : [];
  }

  /** Marks a path committed; returns dependents that became ready. */
  committed(path: string): string[] {
    const ready: string[] = [];
    for (const dependent of this.dependents.get(path) ?? []) {
      this.waitingOn.get(dependent)!.delete(path);
      if (this.isReady(dependent)) ready.push(dependent);
    }
    return ready;
  }

  private isReady(path: string): boolean {
    return this.uploaded.has(path) && this.waitingOn.get(path)!.size === 0;
  }
}
