import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LmdbCatalog } from '../../lib';
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
});
