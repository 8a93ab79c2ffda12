import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ClusterRegistry, NodeConflictError, RegistrySnapshot } from '../../lib/cluster';
import { clusterClient, standaloneClient, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const TTL = 1000;
const BEAT = 200;

const ids = (s: RegistrySnapshot) => s.nodes.map(n => `${n.group}:${n.server}`);

function registrySuite(label: string, connect: () => Promise<any>) {
  describe(`cluster registry on ${label}`, function () {
    this.timeout(30_000);
    const clients: any[] = [];
    const registries: ClusterRegistry[] = [];
    let namespace: string;

    const client = async () => {
      const c = await connect();
      clients.push(c);
      return c;
    };

    /** A node (group, server) of the test's cluster; `instance` is its data root's id. */
    async function node(group: number, server: number, instance = randomBytes(16).toString('hex'), extra: { free?: number } = {}) {
      const r = new ClusterRegistry(await client(), {
        namespace, ttlMs: TTL, heartbeatMs: BEAT, timeoutMs: 1000,
        self: { group, server, url: `http://node-${group}-${server}.test`, instance, version: '9.9.9', startedAt: Date.now() },
        stats: () => ({ free: extra.free ?? 1000 * server, total: 10_000, load: 0.5 }),
      });
      registries.push(r);
      return r;
    }

    beforeEach(() => { namespace = uniqueNamespace('registry'); });

    afterEach(async () => {
      for (const r of registries.splice(0)) await r.leave();
      for (const c of clients.splice(0)) c.disconnect();
    });

    it('registers nodes, and each sees all of them with what they reported', async () => {
      const a = await node(1, 1);
      const b = await node(1, 2);
      const c = await node(2, 1);
      await a.join();
      await b.join();
      await c.join();
      // a learns of c through Pub/Sub long before its next heartbeat would tell it
      for (const r of [ a, b, c ]) await until('all three in every map', () => ids(r.snapshot()).join() === '1:1,1:2,2:1', 1000);
      const entry = a.snapshot().nodes.find(n => n.group === 2)!;
      assert.equal(entry.url, 'http://node-2-1.test');
      assert.equal(entry.free, 1000);
      assert.equal(entry.total, 10_000);
      assert.equal(entry.version, '9.9.9');
      assert.equal(entry.state, 'starting');
      assert.equal(a.snapshot().status, 'ok');
      // state changes are published at once
      c.setState('up');
      await until('c up in a\'s map', () => a.snapshot().nodes.find(n => n.group === 2)?.state === 'up', 1000);
    });

    it('a node that stops beating leaves every map within its TTL', async () => {
      const a = await node(1, 1);
      const b = await node(1, 2);
      await a.join();
      await b.join();
      await until('a sees b', () => ids(a.snapshot()).includes('1:2'), 1000);
      b.abandon(); // as a SIGKILL: no leave()
      const stopped = Date.now();
      await until('b gone from a\'s map', () => !ids(a.snapshot()).includes('1:2'), 3000, 10);
      const after = Date.now() - stopped;
      // its last heartbeat was at most one period before it stopped, and its entry lives a TTL from there
      assert(after >= TTL - BEAT - 100, `left after ${after} ms, before its TTL could have run out`);
      assert(after <= TTL + 250, `left after ${after} ms, more than the TTL (${TTL} ms)`);
      assert.deepEqual(ids(a.snapshot()), [ '1:1' ]);
    });

    it('a node that leaves is gone from the others\' maps at once', async () => {
      const a = await node(1, 1);
      const b = await node(1, 2);
      await a.join();
      await b.join();
      await until('a sees b', () => ids(a.snapshot()).includes('1:2'), 1000);
      const left = Date.now();
      await b.leave();
      await until('b gone from a\'s map', () => !ids(a.snapshot()).includes('1:2'), 1000, 5);
      assert(Date.now() - left < BEAT, `took ${Date.now() - left} ms: not told through Pub/Sub`);
      assert.equal(b.snapshot().status, 'stopped');
    });

    it('refuses a second node with the same group and server, and leaves the first one\'s entry alone', async () => {
      const a = await node(4, 9);
      await a.join();
      const twin = await node(4, 9);
      await assert.rejects(twin.join(), (err: Error) => {
        assert(err instanceof NodeConflictError);
        assert.equal(err.code, 'NODE_CONFLICT');
        assert.match(err.message, /group 4 server 9 is already taken .* by the node at http:\/\/node-4-9\.test/);
        assert.match(err.message, /another server number/);
        return true;
      });
      await a.refresh();
      assert.equal(a.snapshot().nodes.length, 1);
      assert.equal(a.snapshot().nodes[0].instance, (a as any).opts.self.instance);
      // and once the first has left, the group and server are free again
      await a.leave();
      const third = await node(4, 9);
      await third.join();
      assert.deepEqual(ids(third.snapshot()), [ '4:9' ]);
    });

    it('accepts a node that comes back after a crash while its old entry is still live (same data root)', async () => {
      const instance = randomBytes(16).toString('hex');
      const watcher = await node(1, 1);
      await watcher.join();
      const first = await node(2, 2, instance);
      await first.join();
      first.abandon(); // crashed: its entry lives on for up to a TTL
      const again = await node(2, 2, instance);
      await again.join();
      await until('the restarted node in the watcher\'s map', () => watcher.snapshot().nodes.find(n => n.group === 2 && n.startedAt === (again as any).opts.self.startedAt), 1000);
      // it keeps beating: still there after several TTLs
      await new Promise(r => setTimeout(r, TTL * 2));
      assert.deepEqual(ids(watcher.snapshot()), [ '1:1', '2:2' ]);
    });

    it('a node whose group and server were taken while it was cut off reports the conflict and keeps running', async () => {
      const a = await node(5, 5);
      await a.join();
      a.abandon();
      await new Promise(r => setTimeout(r, TTL + 100));
      const usurper = await node(5, 5);
      await usurper.join();
      // a comes back (its timers restarted as after a network cut)
      (a as any).running = true;
      (a as any).beatNow(false);
      await until('a in conflict', () => a.snapshot().status === 'conflict', 2000);
      assert.match(a.snapshot().error!, /group 5 server 5 is already taken/);
      assert.equal(usurper.snapshot().nodes[0].instance, (usurper as any).opts.self.instance);
    });
  });
}

registrySuite('standalone Redis', () => standaloneClient());
registrySuite('a three-master Redis Cluster', () => clusterClient());
