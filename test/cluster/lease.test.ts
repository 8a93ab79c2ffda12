import assert from 'node:assert/strict';
import { ClusterLease } from '../../lib/cluster';
import { clusterClient, standaloneClient, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const TTL = 900;

function leaseSuite(label: string, connect: () => Promise<any>) {
  describe(`cluster lease on ${label}`, function () {
    this.timeout(30_000);
    const clients: any[] = [];
    const leases: ClusterLease[] = [];
    let namespace: string;

    /** A contender with its own connection; records what happens to it, with times. */
    async function contender(owner: string) {
      const redis = await connect();
      clients.push(redis);
      const events: Array<{ what: 'acquire' | 'lose'; at: number; token?: number; reason?: string }> = [];
      const lease = new ClusterLease(redis, { namespace, name: 'duties', owner, ttlMs: TTL, timeoutMs: 500 })
        .onAcquire(token => events.push({ what: 'acquire', at: Date.now(), token }))
        .onLose(reason => events.push({ what: 'lose', at: Date.now(), reason }));
      leases.push(lease);
      return { lease, redis, events };
    }

    beforeEach(() => { namespace = uniqueNamespace('lease'); });

    afterEach(async () => {
      for (const l of leases.splice(0)) await l.stop();
      for (const c of clients.splice(0)) c.disconnect();
    });

    it('one holder at a time; when the holder stops renewing it stops acting before another node takes over with a higher token', async () => {
      const a = await contender('node-a');
      const b = await contender('node-b');
      a.lease.start();
      await until('a holds it', () => a.lease.token !== undefined, 2000);
      b.lease.start();
      // b keeps trying for several TTLs and never gets it while a renews
      await new Promise(r => setTimeout(r, TTL * 2));
      assert.equal(b.lease.token, undefined);
      assert.equal(b.events.length, 0, JSON.stringify(b.events));
      assert.deepEqual(await b.lease.holder().then(h => h && [ h.owner, h.token ]), [ 'node-a', a.lease.token ]);

      // a's connection dies (as a partition): it cannot renew any more
      const first = a.lease.token!;
      a.redis.disconnect();
      await until('b takes over', () => b.lease.token, 5000);
      const lost = a.events.find(e => e.what === 'lose')!;
      const took = b.events.find(e => e.what === 'acquire')!;
      assert(lost, 'a was never told it lost the lease');
      assert.equal(lost.reason, 'could not renew it in time');
      assert(lost.at <= took.at, `b acted at ${took.at}, before a stopped at ${lost.at}`);
      assert(took.token! > first, `fencing token ${took.token} is not above ${first}`);
      assert.equal(a.lease.token, undefined);
    });

    it('a released lease is taken at once; each acquisition gets a higher fencing token', async () => {
      const a = await contender('node-a');
      const b = await contender('node-b');
      const tokens: number[] = [];
      a.lease.start();
      await until('a holds it', () => a.lease.token, 2000);
      tokens.push(a.lease.token!);
      b.lease.start();
      for (let round = 0; round < 3; round++) {
        const [ holder, standby ] = round % 2 ? [ b, a ] : [ a, b ];
        if (round) standby.lease.start(); // stopped in the round before
        await holder.lease.stop();
        assert.equal(holder.events.at(-1)!.reason, 'stopped');
        standby.lease.poke(); // what the registry's Pub/Sub notice does in the agent
        const released = Date.now();
        await until('the standby takes it', () => standby.lease.token, 2000, 5);
        assert(Date.now() - released < TTL / 2, 'the standby waited for the lease to lapse');
        tokens.push(standby.lease.token!);
      }
      for (let i = 1; i < tokens.length; i++) assert(tokens[i] > tokens[i - 1], `tokens ${tokens} do not increase`);
      const h = await a.lease.holder();
      assert.equal(h!.token, tokens.at(-1));
    });

    it('a holder that is taken over (its lease lapsed during a pause) learns it at its next renewal', async () => {
      const a = await contender('node-a');
      const b = await contender('node-b');
      a.lease.start();
      await until('a holds it', () => a.lease.token, 2000);
      // a pauses past its TTL without noticing (timers frozen), b takes over
      (a.lease as any).running = false;
      clearTimeout((a.lease as any).timer);
      clearTimeout((a.lease as any).validity);
      b.lease.start();
      await until('b takes over', () => b.lease.token, 3000);
      // a wakes up and renews: the owner check refuses it
      (a.lease as any).running = true;
      (a.lease as any).tick();
      await until('a told', () => a.events.some(e => e.what === 'lose'), 2000);
      assert.equal(a.events.at(-1)!.reason, 'another node holds it now');
      assert.equal((await b.lease.holder())!.owner, 'node-b');
    });
  });
}

leaseSuite('standalone Redis', () => standaloneClient());
leaseSuite('a three-master Redis Cluster', () => clusterClient());
