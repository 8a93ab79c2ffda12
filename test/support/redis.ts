import { randomBytes } from 'node:crypto';

/** ioredis as egg-redis 2 gives it to apps (4.x), not the newer copy another package brings. */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const IORedis = require(require.resolve('ioredis', { paths: [ require.resolve('egg-redis/package.json') ] }));

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with npm test, which starts Redis (scripts/test.sh)`);
  return v;
}

export interface TestRedis {
  client: any;
  /** a namespace of this test's own: keys of other tests and runs never meet it */
  namespace: string;
  /** Deletes this test's keys and closes the client. */
  done(): Promise<void>;
}

/** A client of the standalone server (`cluster: false`) or of the three-master Redis Cluster that npm test starts. */
export async function testRedis(kind: 'standalone' | 'cluster'): Promise<TestRedis> {
  const namespace = `test-${randomBytes(6).toString('hex')}`;
  const client = kind === 'standalone'
    ? new IORedis(required('SONOFS_TEST_REDIS_URL'), { maxRetriesPerRequest: 2 })
    : new IORedis.Cluster(required('SONOFS_TEST_REDIS_CLUSTER').split(',').map(hp => {
      const [ host, port ] = hp.split(':');
      return { host, port: Number(port) };
    }), { redisOptions: { maxRetriesPerRequest: 2 } });
  await client.ping();
  return {
    client, namespace,
    async done() {
      const masters = kind === 'standalone' ? [ client ] : client.nodes('master');
      for (const node of masters) {
        const keys: Buffer[] = await node.keysBuffer(`{${namespace}}*`);
        for (const key of keys) await client.del(key);
      }
      await client.quit();
    },
  };
}
