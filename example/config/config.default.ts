import path from 'node:path';
import type { EggAppInfo } from 'egg';
import { authenticate, DemoUsersConfig } from '../app/lib/auth';
import { redisClientFromUrl } from '../lib/redis-url';

const int = (v: string | undefined, fallback: number) => (v === undefined || v === '' ? fallback : Number(v));

/** A setting from the environment that the demo cannot start without understanding. */
function refuse(name: string, why: string): never {
  throw new Error(`[sonofs-demo] ${name}: ${why}`);
}

/** SONOFS_DEMO_USERS, SONOFS_DEMO_TOKEN_TTL (seconds), SONOFS_DEMO_SECRET. */
function demoUsers(root: string): DemoUsersConfig {
  const env = process.env;
  const mode = env.SONOFS_DEMO_USERS ?? '';
  if (![ '', '0', '1' ].includes(mode)) refuse('SONOFS_DEMO_USERS', `is ${JSON.stringify(mode)}; set 1 (a token on every request) or 0 (default: without one a request is user anonymous)`);
  const ttl = int(env.SONOFS_DEMO_TOKEN_TTL, 24 * 3600);
  if (!Number.isSafeInteger(ttl) || ttl < 1) refuse('SONOFS_DEMO_TOKEN_TTL', `is ${JSON.stringify(env.SONOFS_DEMO_TOKEN_TTL)}; set the token lifetime in whole seconds, at least 1`);
  const secret = env.SONOFS_DEMO_SECRET || undefined;
  if (secret !== undefined && secret.length < 32) refuse('SONOFS_DEMO_SECRET', 'must be at least 32 characters (e.g. `openssl rand -hex 32`), or unset for a random one kept in the data root');
  return { mode: mode === '1' ? 'required' : 'optional', tokenTtl: ttl * 1000, secret, dir: path.join(root, 'demo-users'), passwordMinLength: 8 };
}

/** SONOFS_FUPLOAD_TOKEN and SONOFS_FUPLOAD_NOTIFY_URL: one business server for the fupload task API. */
function fupload() {
  const { SONOFS_FUPLOAD_TOKEN: token, SONOFS_FUPLOAD_NOTIFY_URL: notifyUrl } = process.env;
  if (!token && !notifyUrl) return {};
  if (!token || !notifyUrl) refuse(token ? 'SONOFS_FUPLOAD_NOTIFY_URL' : 'SONOFS_FUPLOAD_TOKEN', 'set both SONOFS_FUPLOAD_TOKEN and SONOFS_FUPLOAD_NOTIFY_URL to turn the fupload task API on, or neither');
  if (token.length < 16) refuse('SONOFS_FUPLOAD_TOKEN', 'must be at least 16 characters: whoever knows it may create upload tasks');
  let url: URL | undefined;
  try {
    url = new URL(notifyUrl);
  } catch {
    // refused below
  }
  if (!url || !/^https?:$/.test(url.protocol)) refuse('SONOFS_FUPLOAD_NOTIFY_URL', `is ${JSON.stringify(notifyUrl)}; set the http(s) URL the completion callbacks are POSTed to`);
  // how often and how many times a task whose bytes are all in is tried again (tests shorten them)
  const retry = process.env.SONOFS_FUPLOAD_FINISH_RETRY_MS ? { finishRetryAfter: int(process.env.SONOFS_FUPLOAD_FINISH_RETRY_MS, 30_000) } : {};
  const attempts = process.env.SONOFS_FUPLOAD_FINISH_ATTEMPTS ? { finishAttempts: int(process.env.SONOFS_FUPLOAD_FINISH_ATTEMPTS, 5) } : {};
  return { fupload: { servers: { [token]: { name: 'demo', notifyUrl } }, ...retry, ...attempts } };
}

/** SONOFS_PLACEMENT_PREFER_LOCAL (1/0), SONOFS_PLACEMENT_MIN_FREE (bytes), SONOFS_PLACEMENT_MAX_LOAD, SONOFS_PLACEMENT_WEIGHT_FREE / _LOAD. */
function placement(env: NodeJS.ProcessEnv) {
  const num = (name: string) => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) refuse(name, `is ${JSON.stringify(v)}; set a number >= 0`);
    return n;
  };
  const prefer = env.SONOFS_PLACEMENT_PREFER_LOCAL;
  if (prefer !== undefined && prefer !== '' && prefer !== '0' && prefer !== '1') refuse('SONOFS_PLACEMENT_PREFER_LOCAL', `is ${JSON.stringify(prefer)}; set 1 or 0`);
  const minFree = num('SONOFS_PLACEMENT_MIN_FREE');
  const maxLoad = num('SONOFS_PLACEMENT_MAX_LOAD');
  const free = num('SONOFS_PLACEMENT_WEIGHT_FREE');
  const load = num('SONOFS_PLACEMENT_WEIGHT_LOAD');
  return {
    ...(prefer ? { preferLocal: prefer === '1' } : {}),
    ...(minFree !== undefined ? { minFreeBytes: minFree } : {}),
    ...(maxLoad !== undefined ? { maxLoad } : {}),
    weights: { ...(free !== undefined ? { free } : {}), ...(load !== undefined ? { load } : {}) },
  };
}

/** Cluster mode is on with SONOFS_REDIS_URL; the other cluster settings only matter then. */
function cluster() {
  const env = process.env;
  if (!env.SONOFS_REDIS_URL) return {};
  const ttl = int(env.SONOFS_CLUSTER_TTL_MS, 5000);
  return {
    // the agent's client holds the registry; each worker's reaches the catalog the nodes share
    redis: { client: redisClientFromUrl(env.SONOFS_REDIS_URL), agent: true, app: true },
    cluster: {
      redis: true,
      advertiseUrl: env.SONOFS_ADVERTISE_URL || `http://127.0.0.1:${env.PORT || 7001}`,
      ...(env.SONOFS_CLUSTER_SECRET ? { secret: env.SONOFS_CLUSTER_SECRET } : {}),
      ...(env.SONOFS_CLUSTER_NAME ? { namespace: env.SONOFS_CLUSTER_NAME } : {}),
      ttl, heartbeat: Math.ceil(ttl / 5), leaseTtl: ttl,
      ...(env.SONOFS_REMOTE_READS ? { remoteReads: env.SONOFS_REMOTE_READS } : {}),
      ...(env.SONOFS_CLUSTER_READ_TIMEOUT_MS ? { readTimeout: int(env.SONOFS_CLUSTER_READ_TIMEOUT_MS, 3000) } : {}),
      ...(env.SONOFS_CLUSTER_RESERVE_BYTES ? { reserveBytes: int(env.SONOFS_CLUSTER_RESERVE_BYTES, 0) } : {}),
      ...(env.SONOFS_REPLICATION ? { replication: env.SONOFS_REPLICATION } : {}),
      placement: placement(env),
    },
  };
}

export default (appInfo: EggAppInfo) => {
  const root = path.resolve(process.env.SONOFS_ROOT || 'data');
  const { redis, cluster: clusterMode } = cluster();
  return {
    ...(redis ? { redis } : {}),
    keys: process.env.EGG_KEYS || 'sonofs-demo-change-me',
    middleware: [ 'servedBy', 'bearerChallenge' ],
    sonofs: {
      root,
      group: int(process.env.SONOFS_GROUP, 0),
      server: int(process.env.SONOFS_SERVER, 0),
      ...(process.env.SONOFS_EXTENT_MIB ? { extentSize: int(process.env.SONOFS_EXTENT_MIB, 64) * 1024 * 1024 } : {}),
      // SONOFS_FSYNC=0 answers before data reaches the disk (faster, not power-loss safe)
      fsync: process.env.SONOFS_FSYNC !== '0',
      // the signed-in user of a request (token from /user/signin), see app/lib/auth.ts
      authenticate,
      // browsers on other origins may send the token to /files (no cookie is involved)
      tus: { cors: { allowHeaders: [ 'Authorization' ] } },
      // the upload page's sign-in form posts to the demo's /user/signin and sends the token it gets back
      page: { signinUrl: '/user/signin' },
      ...fupload(),
      ...(clusterMode ? { cluster: clusterMode } : {}),
      // how often the agent sweeps expired uploads (and what uploads taken over between nodes left behind)
      ...(process.env.SONOFS_SWEEP_INTERVAL_MS ? { uploads: { sweepInterval: int(process.env.SONOFS_SWEEP_INTERVAL_MS, 60_000) } } : {}),
    },
    demoUsers: demoUsers(root),
    // The demo's own API and the course's /user routes (which set no cookie); the plugin exempts exactly its own routes itself.
    security: {
      csrf: { ignore: [ '/demo', '/user' ] },
    },
    logger: {
      dir: process.env.SONOFS_LOG_DIR || path.join(appInfo.baseDir, 'logs'),
    },
    rundir: path.join(appInfo.baseDir, 'run'),
  };
};
