import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ClusterLease, ClusterRegistry } from '../../lib/cluster';
import { IORedis, FAIL_FAST, PrivateRedis, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

describe('cluster registry and lease while Redis is stopped and started again (a Redis of the test\'s own)', function () {
  this.timeout(60_000);
  const redis = new PrivateRedis();
  let client: any;
  let registry: ClusterRegistry;
  let lease: ClusterLease;
  const namespace = uniqueNamespace('down');
  const instance = randomBytes(16).toString('hex');
  const leaseEvents: string[] = [];
  let firstToken: number;

  before(async () => {
    await redis.start();
    // what the demo configures: fail fast, reconnect forever
    client = new IORedis(redis.url, FAIL_FAST);
    client.on('error', () => undefined);
    await new Promise(r => client.once('ready', r));
    registry = new ClusterRegistry(client, {
      namespace, ttlMs: 1500, heartbeatMs: 300, timeoutMs: 1000,
      self: { group: 1, server: 1, url: 'http://a.test', instance, version: '1', startedAt: Date.now() },
      stats: () => ({ free: 1, total: 2, load: 0 }),
    });
    lease = new ClusterLease(client, { namespace, name: 'duties', owner: 'a', ttlMs: 1500, timeoutMs: 500 })
      .onAcquire(t => leaseEvents.push(`acquire ${t}`))
      .onLose(reason => leaseEvents.push(`lose: ${reason}`));
    await registry.join();
    lease.start();
    await until('the lease', () => lease.token, 3000);
    firstToken = lease.token!;
  });

  after(async () => {
    await lease?.stop();
    await registry?.leave();
    client?.disconnect();
    await redis.remove();
  });

  it('reports Redis unreachable within seconds, answers reads without hanging, drops the lease, and registers again when Redis is back', async () => {
    await redis.stop();
    const stopped = Date.now();
    await until('status unreachable', () => registry.snapshot().status === 'unreachable', 5000);
    assert(Date.now() - stopped < 3000, `noticed after ${Date.now() - stopped} ms`);
    // a read while Redis is away fails within the call timeout instead of queueing
    const t0 = Date.now();
    await registry.refresh();
    assert(Date.now() - t0 < 1500, `refresh took ${Date.now() - t0} ms`);
    assert.equal(registry.snapshot().status, 'unreachable');
    assert(registry.snapshot().error);
    // the holder gives the duty up before its lease could lapse in Redis
    await until('the lease given up', () => leaseEvents.includes('lose: could not renew it in time'), 3000);
    assert.equal(lease.token, undefined);

    // several backoff rounds later, Redis comes back empty (no persistence): everything is registered again
    await new Promise(r => setTimeout(r, 2000));
    await redis.start();
    const back = Date.now();
    await until('status ok again', () => registry.snapshot().status === 'ok' && registry.snapshot().nodes.length === 1, 15_000);
    const check = new IORedis(redis.url, FAIL_FAST);
    check.on('error', () => undefined);
    await new Promise(r => check.once('ready', r));
    try {
      const entry = JSON.parse(await check.hget(registry.keys.nodes, '1:1'));
      assert.equal(entry.instance, instance);
    } finally {
      check.disconnect();
    }
    await until('the lease again', () => lease.token, 5000);
    assert.match(leaseEvents.at(-1)!, /^acquire \d+$/);
    // Redis lost the counter with everything else: the token still grows
    assert(lease.token! > firstToken, `token ${lease.token} after the restart is not above ${firstToken}`);
    assert(Date.now() - back < 10_000);
  });
});
