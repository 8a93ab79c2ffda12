import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LmdbSessionStore, localLiveness } from '../../lib';
import { RedisSessionStore } from '../../lib/sessions/redis-sessions';
import { sessionStoreConformance } from './session-store-conformance';
import { testRedis } from '../support/redis';

describe('lib: session store conformance', () => {
  describe('LMDB (embedded)', () => {
    sessionStoreConformance(async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-session-conformance-'));
      return {
        open: async (node, liveness) => new LmdbSessionStore(dir, node, liveness),
        async done() { fs.rmSync(dir, { recursive: true, force: true }); },
      };
    });
  });

  for (const kind of [ 'standalone', 'cluster' ] as const) {
    describe(`Redis (${kind === 'cluster' ? 'a three-master Redis Cluster' : 'standalone'})`, () => {
      sessionStoreConformance(async () => {
        const main = await testRedis(kind);
        const extra: Array<Awaited<ReturnType<typeof testRedis>>> = [];
        return {
          async open(node, liveness) {
            // a handle of its own connection, as another process or node has
            const r = await testRedis(kind);
            extra.push(r);
            return new RedisSessionStore(r.client, node, { namespace: main.namespace, liveness: liveness ?? localLiveness(node) });
          },
          async done() {
            for (const r of extra) await r.client.quit();
            await main.done();
          },
        };
      });
    });
  }

  it('Redis: a node is told only its own expired sessions and those holding no bytes', async () => {
    const r = await testRedis('standalone');
    try {
      const n1 = new RedisSessionStore(r.client, 'n1', { namespace: r.namespace, liveness: localLiveness('n1') });
      const n2 = new RedisSessionStore(r.client, 'n2', { namespace: r.namespace, liveness: localLiveness('n2') });
      const past = Date.now() - 1000;
      const base = { protocol: 'tus' as const, user: 'u', offset: 0, ranges: [], created: past, expires: past, state: 'active' as const, extra: {} };
      await n1.put({ ...base, id: 'a', node: 'n1' });
      await n1.put({ ...base, id: 'b', node: 'n2' });
      await n1.put({ ...base, id: 'c', state: 'done' });
      assert.deepEqual((await n1.expired(Date.now(), 10)).sort(), [ 'a', 'c' ]);
      assert.deepEqual((await n2.expired(Date.now(), 10)).sort(), [ 'b', 'c' ]);
    } finally {
      await r.done();
    }
  });

  for (const kind of [ 'standalone', 'cluster' ] as const) {
    it(`Redis (${kind}): a session another node takes over leaves the old node's expiry index for the new one's, in the same step`, async () => {
      const r = await testRedis(kind);
      try {
        const n1 = new RedisSessionStore(r.client, 'n1', { namespace: r.namespace, liveness: localLiveness('n1') });
        const n2 = new RedisSessionStore(r.client, 'n2', { namespace: r.namespace, liveness: localLiveness('n2') });
        const past = Date.now() - 1000;
        await n1.put({ id: 'moving', protocol: 'tus', user: 'u', offset: 0, ranges: [], created: past, expires: past, state: 'active', extra: {}, node: 'n1' });
        assert.deepEqual(await n1.expired(Date.now(), 10), [ 'moving' ]);
        const moved = await n2.update('moving', cur => ({ ...cur, node: 'n2', expires: past + 1 }));
        assert.equal(moved?.node, 'n2');
        // the old node would sweep (and give back) space that is not its own any more
        assert.deepEqual(await n1.expired(Date.now(), 10), []);
        assert.deepEqual(await n2.expired(Date.now(), 10), [ 'moving' ]);
        // an update that keeps the node keeps its line
        await n2.update('moving', cur => ({ ...cur, offset: 1 }));
        assert.deepEqual(await n2.expired(Date.now(), 10), [ 'moving' ]);
      } finally {
        await r.done();
      }
    });
  }
});
