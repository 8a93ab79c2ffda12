import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './http';

/** ioredis as egg-redis 2 gives it to apps (4.x), not the newer copy another package brings. */
// eslint-disable-next-line @typescript-eslint/no-var-requires
export const IORedis: any = require(require.resolve('ioredis', { paths: [ path.dirname(require.resolve('egg-redis/package.json')) ] }));

/** Settings for a client that fails fast when Redis is gone, as the demo sets them. */
export const FAIL_FAST = { maxRetriesPerRequest: 1, connectTimeout: 2000, enableOfflineQueue: false };

/** The standalone Redis of the test run (scripts/test.sh); its absence fails the test. */
export function testRedisUrl(): string {
  const url = process.env.SONOFS_TEST_REDIS_URL;
  if (!url) throw new Error('SONOFS_TEST_REDIS_URL is not set: run the tests through `npm test` (scripts/test.sh starts Redis)');
  return url;
}

/** host:port of each master of the test run's three-master Redis Cluster. */
export function testRedisCluster(): Array<{ host: string; port: number }> {
  const list = process.env.SONOFS_TEST_REDIS_CLUSTER;
  if (!list) throw new Error('SONOFS_TEST_REDIS_CLUSTER is not set: run the tests through `npm test` (scripts/test.sh starts a Redis Cluster)');
  return list.split(',').map(hp => {
    const [ host, port ] = hp.split(':');
    return { host, port: Number(port) };
  });
}

/** A namespace (hash tag) no other test uses. */
export function uniqueNamespace(name: string): string {
  return `t-${name}-${randomBytes(4).toString('hex')}`;
}

async function ready(client: any): Promise<any> {
  if (client.status === 'ready') return client;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('redis client not ready within 10 s')), 10_000);
    client.once('ready', () => { clearTimeout(t); resolve(); });
  });
  return client;
}

/** A client of the standalone test Redis (or `url`), ready. */
export function standaloneClient(url = testRedisUrl(), opts: object = {}): Promise<any> {
  const c = new IORedis(url, { ...FAIL_FAST, ...opts });
  c.on('error', () => undefined);
  return ready(c);
}

/** A client of the test Redis Cluster, ready. */
export function clusterClient(): Promise<any> {
  const c = new IORedis.Cluster(testRedisCluster(), { enableOfflineQueue: false, redisOptions: FAIL_FAST });
  c.on('error', () => undefined);
  return ready(c);
}

/** A Redis server of the test's own (which it may stop and start again), on a free port. */
export class PrivateRedis {
  port = 0;
  private proc: ChildProcess | undefined;
  private dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-private-redis-'));

  /** `persist`: an append-only file synced on every write, so a stop (SIGKILL) and start keeps the data, as a production Redis does. */
  constructor(private readonly opts: { persist?: boolean } = {}) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    // in the foreground, so it is this process's child and stopping it stops exactly it
    this.proc = spawn('redis-server', [ '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', ...(this.opts.persist ? [ '--appendonly', 'yes', '--appendfsync', 'always' ] : [ '--appendonly', 'no' ]) ],
      { stdio: 'ignore' });
    const c = new IORedis(this.url, { ...FAIL_FAST, retryStrategy: () => 100, maxRetriesPerRequest: null, enableOfflineQueue: true });
    c.on('error', () => undefined);
    try {
      await ready(c);
    } finally {
      c.disconnect();
    }
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise(resolve => p.once('exit', resolve));
    p.kill('SIGKILL');
    await exited;
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing answers, as a hung Redis. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async remove(): Promise<void> {
    this.resume();
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

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
