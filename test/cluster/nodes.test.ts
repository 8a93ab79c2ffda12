import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NODE_AUTH_HEADER, signNodeRequest } from '../../lib/cluster';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { request } from '../support/http';
import { PrivateRedis, testRedisCluster, testRedisUrl, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const TTL = 3000;
const SECRET = 'test-cluster-secret';

async function clusterOf(base: string) {
  const res = await request(`${base}/file/cluster`);
  assert.equal(res.status, 200, res.body.toString());
  return res.json();
}

/** pids of a demo's app workers. */
function appWorkerPids(title: string): number[] {
  const out = execFileSync('ps', [ '-eo', 'pid=,args=' ]).toString();
  return out.split('\n').filter(l => l.includes('app_worker') && l.includes(title)).map(l => Number(l.trim().split(/\s+/)[0]));
}

const members = (view: any) => view.nodes.map((n: any) => `${n.group}:${n.server}@${n.url}`).sort();

describe('cluster mode: demo nodes under egg-scripts sharing a Redis registry', function () {
  this.timeout(300_000);
  let dir: string;
  let build: string;
  let namespace: string;
  const running: Demo[] = [];

  /** A node of the test's cluster on a root of its own (`root` to reuse one). */
  async function node(group: number, server: number, opts: { root?: string; wait?: boolean; env?: Record<string, string> } = {}) {
    const root = opts.root ?? fs.mkdtempSync(path.join(dir, `root-${group}-${server}-`));
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: testRedisUrl(), SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: String(TTL),
      SONOFS_GROUP: String(group), SONOFS_SERVER: String(server), SONOFS_ROOT: root, ...opts.env,
    }, { wait: opts.wait });
    running.push(demo);
    return Object.assign(demo, { root });
  }

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-cluster-nodes-'));
    build = path.join(dir, 'build');
    buildDemo(build);
    namespace = uniqueNamespace('nodes');
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('three nodes form a cluster; each lists all; a twin is refused; a graceful stop leaves at once, a SIGKILL within the TTL, and the duties move', async () => {
    const [ a, b, c ] = await Promise.all([ node(1, 1), node(1, 2), node(2, 1) ]);
    const all = [ a, b, c ].map(d => `${d === c ? 2 : 1}:${d === b ? 2 : 1}@${d.base}`).sort();
    for (const d of [ a, b, c ]) {
      const view = await until(`${d.base} to list all three, up`, async () => {
        const v = await clusterOf(d.base);
        return members(v).join() === all.join() && v.nodes.every((n: any) => n.state === 'up') && v.duties.holder && v;
      }, 15_000, 200);
      assert.equal(view.mode, 'cluster');
      assert.equal(view.namespace, namespace);
      assert.equal(view.health.status, 'ok', JSON.stringify(view.health));
      assert.equal(view.nodes.filter((n: any) => n.self).length, 1);
      assert.equal(view.nodes.find((n: any) => n.self).url, d.base);
      assert.deepEqual(view.groups.map((g: any) => [ g.group, g.servers ]), [ [ 1, [ 1, 2 ] ], [ 2, [ 1 ] ] ]);
      for (const n of view.nodes) {
        assert(n.free > 0 && n.total >= n.free, `free ${n.free} of ${n.total}`);
        // null until its first look at its group's other members (replication.test.ts checks the figures)
        assert(n.replicationLagMs === null || n.replicationLagMs >= 0, `replication lag ${n.replicationLagMs}`);
        assert(n.lastHeartbeatMs >= 0 && n.lastHeartbeatMs < TTL, `last heartbeat ${n.lastHeartbeatMs} ms ago`);
      }
      // exactly one node holds the duties, the same in every view
      assert.equal(view.nodes.filter((n: any) => n.duties).length, 1);
    }
    const holders = new Set(await Promise.all([ a, b, c ].map(async d => (await clusterOf(d.base)).duties.holder.url)));
    assert.equal(holders.size, 1);

    // node-to-node calls carry the cluster secret
    const nodePath = '/file/cluster/node';
    assert.equal((await request(`${b.base}${nodePath}`)).status, 401);
    assert.equal((await request(`${b.base}${nodePath}`, { headers: { [NODE_AUTH_HEADER]: signNodeRequest('wrong', 'GET', nodePath) } })).status, 401);
    const who = await request(`${b.base}${nodePath}`, { headers: { [NODE_AUTH_HEADER]: signNodeRequest(SECRET, 'GET', nodePath) } });
    assert.equal(who.status, 200, who.body.toString());
    assert.deepEqual([ who.json().group, who.json().server ], [ 1, 2 ]);

    // a second node claiming group 1 server 2 (another root) is refused at start, and b is untouched
    const twin = await node(1, 2, { wait: false });
    const code = await twin.exited;
    assert.notEqual(code, 0);
    assert.match(twin.output(), new RegExp(`group 1 server 2 is already taken in cluster "${namespace}" by the node at ${b.base.replace(/\./g, '\\.')}`));
    const afterTwin = await clusterOf(a.base);
    assert.deepEqual(members(afterTwin), all);
    assert.equal(afterTwin.nodes.find((n: any) => n.server === 2).instance, (await clusterOf(b.base)).self.instance);

    // graceful stop (SIGTERM, as egg-scripts stop): gone from the others' maps at once, long before its TTL
    const stopping = Date.now();
    const stopped = c.stop();
    await until('c gone from a\'s map', async () => !members(await clusterOf(a.base)).some((m: string) => m.startsWith('2:1@')), TTL, 50);
    const goneAfter = Date.now() - stopping;
    await stopped;
    assert(goneAfter < TTL - 500, `c left ${goneAfter} ms after SIGTERM: not removed on stop`);
    await until('c to log it left', () => /left cluster/.test(fs.readFileSync(path.join(dir, `logs-${c.port}`, 'egg-agent.log'), 'utf8')), 5000, 200);

    // SIGKILL of the duty holder (every process of it): it leaves within the TTL, and the other takes the duties
    // (when c held the duties, a or b takes them over within the lease TTL)
    const holderUrl = (await until('a duty holder after c left', async () => (await clusterOf(a.base)).duties.holder, TTL + 2000, 100)).url;
    const [ victim, survivor ] = holderUrl === a.base ? [ a, b ] : [ b, a ];
    const before = (await clusterOf(survivor.base)).duties.token;
    const killed = Date.now();
    await victim.kill9();
    await until('the victim gone from the survivor\'s map', async () => (await clusterOf(survivor.base)).nodes.length === 1, TTL + 2000, 50);
    const leftAfter = Date.now() - killed;
    // (plus the time to notice it here on a busy machine)
    assert(leftAfter <= TTL + 1000, `left ${leftAfter} ms after SIGKILL (TTL ${TTL} ms)`);
    const view = await until('the survivor to hold the duties', async () => {
      const v = await clusterOf(survivor.base);
      return v.duties.holder?.url === survivor.base && v;
    }, TTL + 3000, 100);
    assert(view.duties.token > before, `fencing token ${view.duties.token} not above ${before}`);

    // the victim restarts on its own root: accepted as itself
    const back = await node(1, victim === a ? 1 : 2, { root: victim.root });
    await until('the restarted node in the survivor\'s map', async () => (await clusterOf(survivor.base)).nodes.some((n: any) => n.url === back.base), 10_000, 100);

    // one worker closing alone (SIGTERM to it; egg-cluster forks another) takes the node out of the
    // registry as a shutdown would, and the node joins again by itself
    const [ worker ] = appWorkerPids(survivor.title);
    process.kill(worker, 'SIGTERM');
    await until('the survivor to leave', async () => !(await clusterOf(back.base)).nodes.some((n: any) => n.url === survivor.base), TTL, 50);
    await until('the survivor back', async () => (await clusterOf(back.base)).nodes.some((n: any) => n.url === survivor.base && n.state === 'up'), TTL + 15_000, 200);
    assert.notDeepEqual(appWorkerPids(survivor.title), [ worker ]);
  });

  it('a node that crashes and restarts on the same root before its entry expires is not refused by it (registry on the Redis Cluster)', async () => {
    // a long TTL for this node only, so its entry outlives the restart
    const env = { SONOFS_CLUSTER_TTL_MS: '60000', SONOFS_REDIS_URL: testRedisCluster().map(n => `redis://${n.host}:${n.port}`).join(',') };
    const first = await node(7, 7, { env });
    const instance = (await clusterOf(first.base)).self.instance;
    await first.kill9();
    const again = await node(7, 7, { root: first.root, env });
    const view = await until('the restarted node, up', async () => {
      const v = await clusterOf(again.base);
      return v.nodes.some((n: any) => n.server === 7 && n.url === again.base && n.state === 'up') && v;
    }, 10_000, 100);
    assert.equal(view.self.instance, instance);
    await again.stop();
  });
});

describe('cluster mode: a node while its Redis is stopped and started again', function () {
  this.timeout(180_000);
  let dir: string;
  let demo: Demo | undefined;
  const redis = new PrivateRedis();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-cluster-down-'));
    buildDemo(path.join(dir, 'build'));
    await redis.start();
    demo = await startDemo(path.join(dir, 'build'), dir, {
      SONOFS_REDIS_URL: redis.url, SONOFS_GROUP: '1', SONOFS_SERVER: '1', SONOFS_ROOT: path.join(dir, 'root'), SONOFS_CLUSTER_TTL_MS: String(TTL),
    });
  });

  after(async () => {
    await demo?.kill9().catch(() => undefined);
    await redis.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps running, answers GET /file/cluster at once saying the registry is unreachable, and registers again when Redis is back', async () => {
    const base = demo!.base;
    await until('registered', async () => (await clusterOf(base)).nodes.length === 1, 10_000, 100);
    await redis.stop();
    const view = await until('the registry reported unreachable', async () => {
      const t0 = Date.now();
      const v = await clusterOf(base);
      assert(Date.now() - t0 < 1000, `GET /file/cluster took ${Date.now() - t0} ms`);
      return v.registry.status === 'unreachable' && v;
    }, 10_000, 200);
    assert.equal(view.health.status, 'degraded');
    assert.match(view.health.problems.join(), /registry unreachable/);
    // a request that never reaches the shared catalog is answered as usual
    const up = await request(`${base}/file/upload`, { method: 'POST' });
    assert.equal(up.status, 400); // answered (not a multipart body), not hung

    await redis.start(); // empty: the entry must be written again
    const again = await until('registered again', async () => {
      const v = await clusterOf(base);
      return v.registry.status === 'ok' && v.nodes.length === 1 && v.duties.holder && v;
    }, 20_000, 200);
    assert.equal(again.health.status, 'ok', JSON.stringify(again.health));
    assert.equal(again.nodes[0].url, base);
    // the agent stayed the same process all along
    assert.equal(demo!.child.exitCode, null);
    // (egg's logger writes its files once a second)
    await until('the agent to log it', () => /registered again after \d+ failed attempts/.test(fs.readFileSync(path.join(dir, `logs-${demo!.port}`, 'egg-agent.log'), 'utf8')), 5000, 200);
  });
});
