import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clusterView, keyspace, nodeInstanceId, registryLiveness, signNodeRequest, verifyNodeRequest } from '../../lib/cluster';
import { redisClientFromUrl } from '../../example/lib/redis-url';

describe('cluster parts without Redis', () => {
  it('signs node-to-node requests for one method, path and time window', () => {
    const now = Date.now();
    const h = signNodeRequest('s3cret', 'GET', '/file/cluster/node', now);
    assert(verifyNodeRequest('s3cret', 'GET', '/file/cluster/node', h, now));
    assert(verifyNodeRequest('s3cret', 'get', '/file/cluster/node', h, now + 59_000));
    assert(!verifyNodeRequest('other', 'GET', '/file/cluster/node', h, now), 'another secret');
    assert(!verifyNodeRequest('s3cret', 'POST', '/file/cluster/node', h, now), 'another method');
    assert(!verifyNodeRequest('s3cret', 'GET', '/file/cluster/node?x=1', h, now), 'another path');
    assert(!verifyNodeRequest('s3cret', 'GET', '/file/cluster/node', h, now + 61_000), 'too old');
    assert(!verifyNodeRequest('s3cret', 'GET', '/file/cluster/node', undefined, now));
    assert(!verifyNodeRequest('s3cret', 'GET', '/file/cluster/node', `${now}.zz`, now));
  });

  it('keeps the node instance id in the data root: same root, same id; another root, another', () => {
    const a = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-instance-'));
    const b = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-instance-'));
    try {
      const id = nodeInstanceId(a);
      assert.match(id, /^[0-9a-f]{32}$/);
      assert.equal(nodeInstanceId(a), id);
      assert.notEqual(nodeInstanceId(b), id);
      fs.writeFileSync(path.join(a, 'cluster-instance'), 'garbage');
      assert.throws(() => nodeInstanceId(a), /does not hold an instance id/);
    } finally {
      fs.rmSync(a, { recursive: true, force: true });
      fs.rmSync(b, { recursive: true, force: true });
    }
  });

  it('puts every key of a cluster under one hash tag, and refuses a namespace that would break it', () => {
    const k = keyspace('prod-1');
    for (const key of [ k.nodes, k.expiry, k.lease('duties'), k.fence('duties') ]) assert.match(key, /^sonofs:\{prod-1\}:/);
    assert.throws(() => keyspace('a}b'), /namespace/);
    assert.throws(() => keyspace(''), /namespace/);
  });

  it('marks a report older than the TTL as stale (the agent stopped telling)', () => {
    const now = Date.now();
    const self = { group: 1, server: 1, url: 'http://a', instance: 'i1', version: '1', startedAt: now - 60_000 };
    const entry = { ...self, free: 10, total: 20, load: 0, state: 'up' as const, ttl: 5000, expiresAt: now + 4000 };
    const report = {
      namespace: 'n', self, ttlMs: 5000, duties: { holder: 'i1', token: 7, checkedAt: now },
      snapshot: { status: 'ok' as const, since: now - 10_000, error: null, redisNow: now, readAt: now, nodes: [ entry ] },
    };
    const fresh = clusterView(report, now + 100);
    assert.equal(fresh.health.status, 'ok');
    assert.equal(fresh.nodes[0].lastHeartbeatMs, 1100);
    assert.deepEqual(fresh.duties, { holder: { group: 1, server: 1, url: 'http://a' }, token: 7 });
    const stale = clusterView(report, now + 6000);
    assert.equal(stale.health.status, 'degraded');
    assert.match(stale.health.problems[0], /6000 ms old/);
  });

  it('shows each member\'s replication lag from its heartbeat, null before its first look', () => {
    const now = Date.now();
    const self = { group: 1, server: 1, url: 'http://a', instance: 'i1', version: '1', startedAt: now - 60_000 };
    const base = { free: 10, total: 20, load: 0, state: 'up' as const, ttl: 5000, expiresAt: now + 4000 };
    const nodes = [
      { ...self, ...base, replication: { lagBytes: 4096, lagMs: 1200, upTo: now - 1200 } },
      { ...self, ...base, server: 2, instance: 'i2', url: 'http://b' },
    ];
    const view = clusterView({
      namespace: 'n', self, ttlMs: 5000, duties: { holder: 'i1', token: 1, checkedAt: now },
      snapshot: { status: 'ok', since: now, error: null, redisNow: now, readAt: now, nodes },
    }, now);
    assert.deepEqual([ view.nodes[0].replicationLagBytes, view.nodes[0].replicationLagMs, view.nodes[0].replicatedUpTo ], [ 4096, 1200, new Date(now - 1200).toISOString() ]);
    assert.deepEqual([ view.nodes[1].replicationLagBytes, view.nodes[1].replicationLagMs, view.nodes[1].replicatedUpTo ], [ null, null, null ]);
  });

  it('judges a holder on another node by the registry\'s map, one on this node by its pid', () => {
    let map = [ { group: 1, server: 1 }, { group: 2, server: 5 } ];
    const alive = registryLiveness('1.1', () => map);
    assert.equal(alive({ node: '1.1', pid: process.pid }), true);
    assert.equal(alive({ node: '1.1', pid: 2 ** 22 + 12345 }), false); // no such pid here
    assert.equal(alive({ node: '2.5', pid: 1 }), true);
    assert.equal(alive({ node: '3.1', pid: process.pid }), false);
    map = [ { group: 1, server: 1 } ]; // 2.5 left the map
    assert.equal(alive({ node: '2.5', pid: 1 }), false);
  });

  it('the demo reads SONOFS_REDIS_URL as one server or a Redis Cluster, failing fast while Redis is away', () => {
    assert.deepEqual(redisClientFromUrl('redis://:p%40ss@10.0.0.5:6380/2'), {
      host: '10.0.0.5', port: 6380, db: 2, password: 'p@ss', maxRetriesPerRequest: 1, connectTimeout: 3000, enableOfflineQueue: false,
    });
    assert.deepEqual(redisClientFromUrl('redis://127.0.0.1'), {
      host: '127.0.0.1', port: 6379, db: 0, password: null, maxRetriesPerRequest: 1, connectTimeout: 3000, enableOfflineQueue: false,
    });
    const cluster = redisClientFromUrl('redis://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003') as any;
    assert.equal(cluster.cluster, true);
    assert.deepEqual(cluster.nodes, [ 7001, 7002, 7003 ].map(port => ({ host: '127.0.0.1', port })));
    assert.equal(cluster.enableOfflineQueue, false);
    assert.throws(() => redisClientFromUrl('http://x'), /not redis/);
  });
});
