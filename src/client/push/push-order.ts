// The order of a push: dependencies before the paths that refer to them, so
// that each narinfo can be committed as soon as its references are.

export interface Node {
  readonly path: string;
  readonly references: readonly string[];
}

/** Paths sorted so that every path comes after the ones it refers to (within the set). */
export function dependencyOrder<T extends Node>(nodes: readonly T[]): T[] {
  const byPath = new Map(nodes.map((n) => [n.path, n]));
  const state = new Map<string, 'visiting' | 'done'>();
  const order: T[] = [];
  for (const root of nodes) {
    if (state.has(root.path)) continue;
    // Iterative depth-first search: closures can be deeper than the call stack.
    const stack: Array<{ node: T; next: number }> = [{ node: root, next: 0 }];
    state.set(root.path, 'visiting');
    while (stack.length > 0) {
      const top = stack.at(-1)!;
      const refs = top.node.references;
      if (top.next < refs.length) {
        const ref = byPath.get(refs[top.next++]!);
        if (ref && !state.has(ref.path)) {
          state.set(ref.path, 'visiting');
          stack.push({ node: ref, next: 0 });
        }
        continue;
      }
      stack.pop();
      state.set(top.node.path, 'done');
      order.push(top.node);
    }
  }
  return order;
}

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
