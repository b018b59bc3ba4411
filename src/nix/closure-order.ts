// Store paths in dependency order: every path after the paths it refers to,
// which is the order in which a cache can make them visible.

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

