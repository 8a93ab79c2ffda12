import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LmdbCatalog, ReplayRecord, encodeFileId } from '../../lib';
import { RedisCatalog } from '../../lib/catalog/redis-catalog';
import { catalogConformance } from './catalog-conformance';
import { testRedis } from '../support/redis';

describe('lib: catalog conformance', () => {
  describe('LMDB (embedded)', () => {
    catalogConformance(async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-conformance-'));
      const catalog = new LmdbCatalog(dir);
      return {
        catalog,
        other: async () => new LmdbCatalog(dir),
        async done() {
          await catalog.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    });
  });

  for (const kind of [ 'standalone', 'cluster' ] as const) {
    describe(`Redis (${kind === 'cluster' ? 'a three-master Redis Cluster' : 'standalone'})`, () => {
      catalogConformance(async () => {
        const redis = await testRedis(kind);
        const second: Array<Awaited<ReturnType<typeof testRedis>>> = [];
        return {
          catalog: new RedisCatalog(redis.client, { namespace: redis.namespace }),
          async other() {
            // another node: its own connection
            const r = await testRedis(kind);
            second.push(r);
            return new RedisCatalog(r.client, { namespace: redis.namespace });
          },
          async done() {
            for (const r of second) await r.client.quit();
            await redis.done();
          },
        };
      });
    });
  }

  it('Redis: replays each node\'s records against that node\'s own mark', async () => {
    const redis = await testRedis('standalone');
    try {
      const a = new RedisCatalog(redis.client, { namespace: redis.namespace, node: '1.1' });
      const b = new RedisCatalog(redis.client, { namespace: redis.namespace, node: '1.2' });
      const record = (seq: number, server: number, content: string): ReplayRecord => ({
        kind: 'blob', seq, time: Date.now(), user: 'u', name: content, size: content.length, mime: 'application/octet-stream',
        sha1: createHash('sha1').update(content).digest('hex'),
        fileId: encodeFileId({ group: 1, server, bundle: 0, offset: seq * 4096, size: content.length, mimeCode: 1, cookie: seq }),
      });
      // seqs interleave across nodes: node 1.1 took 1 and 3, node 1.2 took 2 and 4
      assert.equal(await a.replay([ record(1, 1, 'a1'), record(3, 1, 'a3') ]), 2);
      assert.equal(await b.replay([ record(2, 2, 'b2'), record(4, 2, 'b4') ]), 2, 'node 1.1\'s mark does not hide node 1.2\'s records');
      assert.equal(await b.replay([ record(2, 2, 'b2'), record(4, 2, 'b4') ]), 0);
      assert.equal((await a.listUserFiles('u', 10)).length, 4);
    } finally {
      await redis.done();
    }
  });
});
