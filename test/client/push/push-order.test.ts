import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CommitGate } from '../../../src/client/push/push-order.ts';
import { dependencyOrder } from '../../../src/nix/closure-order.ts';

test('dependencies come first, whatever the input order; self-references and outside references are ignored', () => {
  const nodes = [
    { path: 'c', references: ['b', 'a', 'c'] },
    { path: 'a', references: ['outside'] },
    { path: 'b', references: ['a'] },
  ];
  assert.deepEqual(dependencyOrder(nodes).map((n) => n.path), ['a', 'b', 'c']);
});

test('a deep chain does not overflow the stack', () => {
  const nodes = Array.from({ length: 100_000 }, (_, i) => ({ path: `p${i}`, references: i ? [`p${i - 1}`] : [] })).reverse();
  const order = dependencyOrder(nodes);
  assert.equal(order[0]!.path, 'p0');
  assert.equal(order.at(-1)!.path, 'p99999');
});

test('property: in any DAG every path comes after its references', () => {
  fc.assert(
    fc.property(fc.array(fc.array(fc.nat(), { maxLength: 4 }), { minLength: 1, maxLength: 40 }), (edges) => {
      // Node i may refer only to nodes with smaller indices: always a DAG.
      const nodes = edges.map((refs, i) => ({ path: `n${i}`, references: i ? refs.map((r) => `n${r % i}`) : [] }));
      const shuffled = [...nodes].sort(() => Math.random() - 0.5);
      const position = new Map(dependencyOrder(shuffled).map((n, i) => [n.path, i]));
      assert.equal(position.size, nodes.length);
      for (const node of nodes) for (const ref of node.references) assert.ok(position.get(ref)! < position.get(node.path)!);
    }),
  );
});

test('the commit gate releases a path only when it is uploaded and its references are committed', () => {
  const gate = new CommitGate([
    { path: 'a', references: [] },
    { path: 'b', references: ['a', 'b'] },
    { path: 'c', references: ['a', 'b', 'elsewhere'] },
  ]);
  assert.deepEqual(gate.uploadedPath('c'), []);
  assert.deepEqual(gate.uploadedPath('b'), []);
  assert.deepEqual(gate.uploadedPath('a'), ['a']);
  assert.deepEqual(gate.committed('a'), ['b']);
  assert.deepEqual(gate.committed('b'), ['c']);
});
