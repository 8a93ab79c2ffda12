import type { Agent, Application } from 'egg';
import { EMBEDDED, MetadataBackend } from '../../lib';
import type { RedisClient } from '../../lib/catalog/redis-client';
import type { Liveness } from '../../lib/liveness';
import { clusterEnabled, registryClient, whenReady } from './cluster-agent';

/**
 * Where a worker's catalog lives: embedded (LMDB beside the bundles), or in
 * cluster mode the Redis of config.sonofs.cluster.redis, through the worker's
 * own egg-redis client. Upload sessions are there too (any node continues
 * an upload); their locks judge another node's holder alive by `liveness`
 * (the registry's, through the worker's cluster map).
 */
export function workerBackend(app: Application, liveness?: Liveness): MetadataBackend {
  const cfg = app.config.sonofs.cluster;
  if (!clusterEnabled(cfg)) return EMBEDDED;
  const singleton = (app as any).redis;
  if (!singleton) {
    throw new Error('[egg-sonofs] config.sonofs.cluster.redis is set, but the app workers have no Redis client: set config.redis.app = true ' +
      '(egg-redis), so that workers reach the catalog the nodes share');
  }
  const name = cfg.redis as true | string;
  const client = name === true ? singleton : singleton.get?.(name);
  if (!client || typeof client.evalsha !== 'function') {
    throw new Error(name === true
      ? '[egg-sonofs] config.sonofs.cluster.redis is true but config.redis has several clients: name one (config.sonofs.cluster.redis = \'<name>\')'
      : `[egg-sonofs] config.sonofs.cluster.redis names the Redis client "${name}", which config.redis.clients does not have`);
  }
  return { kind: 'redis', client: client as RedisClient, namespace: cfg.namespace, callTimeoutMs: cfg.redisTimeout, liveness };
}

/** The agent's: the same Redis through the agent's client (the registry's), once it is connected. */
export async function agentBackend(agent: Agent, liveness?: Liveness): Promise<MetadataBackend> {
  const cfg = agent.config.sonofs.cluster;
  if (!clusterEnabled(cfg)) return EMBEDDED;
  const client = registryClient(agent, cfg.redis as true | string);
  try {
    await whenReady(client, 10_000);
  } catch (err) {
    (err as Error).message = `[egg-sonofs] cluster mode: the shared catalog's Redis is not reachable: ${(err as Error).message}`;
    throw err;
  }
  return { kind: 'redis', client: client as unknown as RedisClient, namespace: cfg.namespace, callTimeoutMs: cfg.redisTimeout, liveness };
}
