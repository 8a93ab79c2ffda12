import assert from 'node:assert/strict';
import { choosePlacement, DEFAULT_PLACEMENT, PlacementConfig, PlacementNode, placementConfig } from '../../lib/cluster';

const GiB = 1024 ** 3;

function node(group: number, server: number, free: number | null, load = 0.1, state = 'up'): PlacementNode {
  return { group, server, url: `http://n${group}-${server}:7001/`, instance: `i${group}.${server}`, state, free, total: 100 * GiB, load };
}

const cfg = (over: Partial<PlacementConfig> = {}): PlacementConfig => placementConfig(over);
const self = { group: 1, instance: 'i1.1' };

describe('placement: which group stores a new upload', () => {
  it('keeps an upload on the local group while it has room and is not overloaded', () => {
    const nodes = [ node(1, 1, 10 * GiB), node(1, 2, 10 * GiB), node(2, 1, 90 * GiB) ];
    assert.deepEqual(choosePlacement(nodes, self, GiB, cfg()), { local: true });
  });

  it('leaves the local group when the file plus the reserve does not fit, for the best other group', () => {
    const nodes = [ node(1, 1, 2 * GiB), node(2, 1, 50 * GiB), node(3, 1, 80 * GiB), node(3, 2, 70 * GiB, 0.5) ];
    const p = choosePlacement(nodes, self, 1.5 * GiB, cfg());
    assert.equal(p.local, false);
    if (p.local !== false) return;
    // group 3 has as much room as its fullest member (70 GiB), more than group 2; its least loaded member first
    assert.equal(p.group, 3);
    assert.deepEqual(p.targets.map(t => t.server), [ 1, 2 ]);
    assert.equal(p.targets[0].url, 'http://n3-1:7001', 'trailing slash trimmed');
  });

  it('a group whose fullest member lacks room does not fit, even if another member has plenty', () => {
    const nodes = [ node(1, 1, 0), node(2, 1, 100 * GiB), node(2, 2, 0.5 * GiB) ];
    const p = choosePlacement(nodes, self, 1024, cfg());
    assert.equal(p.local, null);
    if (p.local !== null) return;
    assert.equal(p.noNode, false);
    assert.match(p.reason, /group 2 has \d+ bytes free/);
  });

  it('leaves an overloaded local group, and weighs load against free space', () => {
    const nodes = [ node(1, 1, 50 * GiB, 9), node(2, 1, 40 * GiB, 3.5), node(3, 1, 30 * GiB, 0.1) ];
    const byFree = choosePlacement(nodes, self, 1, cfg({ weights: { free: 1, load: 0 } }));
    assert.equal(byFree.local === false && byFree.group, 2);
    const byLoad = choosePlacement(nodes, self, 1, cfg({ weights: { free: 1, load: 1 } }));
    assert.equal(byLoad.local === false && byLoad.group, 3);
  });

  it('load only steers: when every group with room is overloaded, the upload is still stored (locally first)', () => {
    const nodes = [ node(1, 1, 50 * GiB, 9), node(2, 1, 80 * GiB, 7) ];
    assert.deepEqual(choosePlacement(nodes, self, 1, cfg()), { local: true });
    const p = choosePlacement([ node(1, 1, 0, 9), ...nodes.slice(1) ], self, 1, cfg());
    assert.equal(p.local === false && p.group, 2);
  });

  it('without preferLocal the local group competes by score, and wins as local', () => {
    const nodes = [ node(1, 1, 10 * GiB), node(2, 1, 90 * GiB) ];
    const p = choosePlacement(nodes, self, 1, cfg({ preferLocal: false }));
    assert.equal(p.local === false && p.group, 2);
    const q = choosePlacement([ node(1, 1, 95 * GiB), node(2, 1, 90 * GiB) ], self, 1, cfg({ preferLocal: false }));
    assert.deepEqual(q, { local: true });
  });

  it('counts this node while it is starting (it takes the upload), other nodes only once up', () => {
    assert.deepEqual(choosePlacement([ node(1, 1, 10 * GiB, 0.1, 'starting') ], self, 1, cfg()), { local: true });
    const p = choosePlacement([ node(1, 1, 0), node(2, 1, 90 * GiB), node(2, 2, 90 * GiB, 0, 'starting') ], self, 1, cfg());
    assert.deepEqual(p.local === false && p.targets.map(t => t.server), [ 1 ]);
  });

  it('counts only nodes that are up; no node at all is noNode', () => {
    const p = choosePlacement([ node(1, 1, 0), node(2, 1, 90 * GiB, 0.1, 'starting') ], self, 1, cfg());
    assert.equal(p.local, null);
    const none = choosePlacement([], self, 1, cfg());
    assert.deepEqual(none.local === null && none.noNode, true);
  });

  it('an unknown free space counts as room (the node checks its disk as it writes)', () => {
    assert.deepEqual(choosePlacement([ node(1, 1, null) ], self, GiB, cfg()), { local: true });
  });

  it('while this node is not in the map, its group is one like any other (a member of it gets the bytes)', () => {
    const nodes = [ node(1, 2, 90 * GiB), node(2, 1, 10 * GiB) ];
    const p = choosePlacement(nodes, self, 1, cfg());
    assert.equal(p.local === false && p.group, 1);
  });

  it('checks its settings and fills in defaults', () => {
    assert.deepEqual(placementConfig(undefined), DEFAULT_PLACEMENT);
    assert.deepEqual(placementConfig({ weights: { load: 2 } as any }).weights, { free: 1, load: 2 });
    assert.throws(() => placementConfig({ minFreeBytes: -1 }), /minFreeBytes/);
    assert.throws(() => placementConfig({ maxLoad: 0 }), /maxLoad/);
    assert.throws(() => placementConfig({ preferLocal: 'yes' as any }), /preferLocal/);
    assert.throws(() => placementConfig({ weights: { free: Number.NaN, load: 1 } }), /weights.free/);
  });
});
