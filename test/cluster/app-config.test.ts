import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mm from 'egg-mock';
import { standaloneClient, testRedisUrl, uniqueNamespace } from '../support/redis';

/** A fixture app in this process, with the env it reads set for the call. */
async function withApp(baseDir: string, env: Record<string, string>, fn: (app: any) => Promise<void>) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-cluster-app-'));
  const saved = { ...process.env };
  Object.assign(process.env, env, { SONOFS_TEST_ROOT: root, SENDMESSAGE_ONE_PROCESS: 'true' });
  const app = mm.app({ baseDir, cache: false });
  try {
    await fn(app);
  } finally {
    await app.close().catch(() => undefined);
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

describe('cluster mode configured by an app (mm.app, a named egg-redis client)', function () {
  this.timeout(60_000);

  it('registers through the client config.sonofs.cluster.redis names, answers GET /file/cluster, and leaves on close', async () => {
    const namespace = uniqueNamespace('app');
    const check = await standaloneClient();
    try {
      await withApp('apps/cluster-app', { SONOFS_TEST_REDIS_URL: testRedisUrl(), SONOFS_TEST_CLUSTER_NS: namespace }, async app => {
        await app.ready();
        assert(app.redis.get('registry'), 'workers have a client of their own for the shared catalog (redis.app = true)');
        assert(app.agent.redis.get('registry'), 'the agent has its own client (redis.agent = true from the plugin)');
        const res = await app.httpRequest().get('/file/cluster').expect(200);
        assert.equal(res.body.mode, 'cluster');
        assert.equal(res.body.namespace, namespace);
        assert.deepEqual(res.body.nodes.map((n: any) => [ n.group, n.server, n.url, n.self ]), [ [ 9, 1, 'http://127.0.0.1:7999', true ] ]);
        assert.equal(res.body.duties.holder.url, 'http://127.0.0.1:7999');
        assert(await check.hget(`sonofs:{${namespace}}:nodes`, '9:1'));
      });
      // closed: the entry is gone at once, not after its TTL
      assert.equal(await check.hget(`sonofs:{${namespace}}:nodes`, '9:1'), null);
      assert.equal(await check.get(`sonofs:{${namespace}}:lease:duties`), null);
    } finally {
      check.disconnect();
    }
  });

  it('refuses to start when cluster mode gives the workers no Redis client (config.redis.app = false), naming the setting', async () => {
    await withApp('apps/cluster-app', { SONOFS_TEST_REDIS_URL: testRedisUrl(), SONOFS_TEST_CLUSTER_NS: uniqueNamespace('app'), SONOFS_TEST_REDIS_APP: '0' }, async app => {
      await assert.rejects(app.ready(), /the app workers have no Redis client: set config\.redis\.app = true/);
    });
  });

  it('refuses to start when cluster mode names a Redis client but the app did not enable egg-redis', async () => {
    await withApp('apps/cluster-no-redis', {}, async app => {
      await assert.rejects(app.ready(), /config\.sonofs\.cluster\.redis is set, but the agent has no Redis client: enable egg-redis in config\/plugin/);
    });
  });
});
