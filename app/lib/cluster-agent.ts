import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import type { Agent } from 'egg';
import type { SonofsClusterConfig } from '../../config/config.default';
import {
  ClusterLease, ClusterRegistry, ClusterReport, DEV_CLUSTER_SECRET, NodeStats, RedisClient, nodeInstanceId,
} from '../../lib/cluster';

/** Messenger actions of cluster mode (requests and broadcasts use different names, see docs/egg-toolchain.md). */
export const CLUSTER_ACTIONS = {
  /** agent → every worker: the registry as last read (ClusterReport) */
  report: 'sonofs:cluster:report',
  /** worker → agent: send me the report (a worker that just started) */
  want: 'sonofs:cluster:want',
  /** worker → agent: I am closing (egg-cluster stops the workers before the agent: the node is going down) */
  stopping: 'sonofs:cluster:stopping',
} as const;

// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../../package.json').version;

export function clusterEnabled(cfg: SonofsClusterConfig | undefined): boolean {
  return !!cfg && cfg.redis !== false && cfg.redis !== '';
}

/** Free and total bytes of the file system holding `root` (less `reserve`, kept for other uses), and the load per core. */
export function nodeStats(root: string, reserve = 0): NodeStats {
  let free: number | null = null;
  let total: number | null = null;
  try {
    const s = fs.statfsSync(root);
    free = Math.max(s.bavail * s.bsize - reserve, 0);
    total = s.blocks * s.bsize;
  } catch { /* unknown */ }
  return { free, total, load: Math.round(os.loadavg()[0] / os.cpus().length * 100) / 100 };
}

/** The agent's egg-redis client that config.sonofs.cluster.redis names, with a message saying what to enable when there is none. */
export function registryClient(agent: Agent, name: true | string): RedisClient {
  const singleton = (agent as any).redis;
  if (!singleton) {
    throw new Error('[egg-sonofs] config.sonofs.cluster.redis is set, but the agent has no Redis client: enable egg-redis in config/plugin ' +
      "(redis: { enable: true, package: 'egg-redis' }), configure config.redis.client, and keep config.redis.agent = true");
  }
  const client = name === true ? singleton : singleton.get?.(name);
  if (!client || typeof client.evalsha !== 'function') {
    throw new Error(name === true
      ? '[egg-sonofs] config.sonofs.cluster.redis is true but config.redis has several clients: name one (config.sonofs.cluster.redis = \'<name>\')'
      : `[egg-sonofs] config.sonofs.cluster.redis names the Redis client "${name}", which config.redis.clients does not have`);
  }
  return client;
}

/** egg-redis connects while the agent loads: wait for the client (ioredis status) before the first call. */
export async function whenReady(client: any, ms: number): Promise<void> {
  if (client.status === undefined || client.status === 'ready') return;
  let lastError: Error | undefined;
  const onError = (err: Error) => { lastError = err; };
  client.on('error', onError);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Redis not ready within ${ms} ms${lastError ? `: ${lastError.message}` : ''}`)), ms);
      client.once('ready', () => { clearTimeout(timer); resolve(); });
    });
  } finally {
    client.removeListener('error', onError);
  }
}

export interface ClusterAgent {
  registry: ClusterRegistry;
  /**
   * One node in the cluster holds it at a time. Cluster-wide duties start in
   * its onAcquire (with the fencing token to carry with their writes) and stop
   * in its onLose. The sweeps of upload sessions and fupload callbacks do
   * not run under it: each session is handled by the node whose disk holds
   * its bytes, which alone can free them (agent.ts startSweeper).
   */
  duties: ClusterLease;
  close(): Promise<void>;
}

/**
 * Cluster mode in the agent: registers the node (refusing to start when a
 * live node of another data root has its group and server), keeps the map,
 * holds or stands by for the cluster-wide lease, and tells the workers.
 * Undefined in embedded mode. `more` adds to what each heartbeat says (the replication lag).
 */
export async function startClusterAgent(agent: Agent, root: string, more?: () => Partial<NodeStats>): Promise<ClusterAgent | undefined> {
  const sonofs = agent.config.sonofs;
  const cfg = sonofs.cluster;
  if (!clusterEnabled(cfg)) return undefined;
  const log = agent.coreLogger;
  if (!(sonofs.server >= 1)) {
    // 0 is the embedded default: two nodes that both forgot to set it would collide
    throw new Error('[egg-sonofs] in cluster mode config.sonofs.server must be 1-255 (SONOFS_SERVER in the demo), unique within its group');
  }
  const redis = registryClient(agent, cfg.redis as true | string);
  if (!/^https?:\/\/[^/]+/.test(cfg.advertiseUrl ?? '')) {
    throw new Error(`[egg-sonofs] cluster mode needs config.sonofs.cluster.advertiseUrl, the http(s) URL other nodes reach this one at (got ${JSON.stringify(cfg.advertiseUrl)})`);
  }
  if (cfg.replication !== 'all' && cfg.replication !== 'one') {
    throw new Error(`[egg-sonofs] config.sonofs.cluster.replication must be 'all' or 'one' (got ${JSON.stringify(cfg.replication)})`);
  }
  if (!(cfg.copyTimeout >= 0) || !(cfg.copyRate > 0)) {
    throw new Error(`[egg-sonofs] config.sonofs.cluster.copyTimeout must be at least 0 (ms) and copyRate above 0 (MiB/s) (got ${cfg.copyTimeout}, ${cfg.copyRate})`);
  }
  if (!cfg.secret || cfg.secret === DEV_CLUSTER_SECRET) {
    log.warn('[egg-sonofs] config.sonofs.cluster.secret is the development default: set the same secret on every node (SONOFS_CLUSTER_SECRET in the demo)');
  }
  const instance = nodeInstanceId(root);
  const self = {
    group: sonofs.group, server: sonofs.server, url: cfg.advertiseUrl.replace(/\/+$/, ''), instance, version: VERSION, startedAt: Date.now(),
  };
  const registry = new ClusterRegistry(redis, {
    namespace: cfg.namespace, self, stats: () => ({ ...nodeStats(root, cfg.reserveBytes), ...more?.() }), ttlMs: cfg.ttl, heartbeatMs: cfg.heartbeat, timeoutMs: cfg.redisTimeout, log,
  });
  try {
    await whenReady(redis, 10_000);
    await registry.join();
  } catch (err) {
    if ((err as { code?: string }).code !== 'NODE_CONFLICT') (err as Error).message = `[egg-sonofs] cluster mode: could not register in Redis: ${(err as Error).message}`;
    throw err;
  }
  log.info('[egg-sonofs] joined cluster "%s" as group %d server %d at %s (instance %s)', cfg.namespace, self.group, self.server, self.url, instance);

  const duties = new ClusterLease(redis, {
    namespace: cfg.namespace, name: 'duties', owner: `${instance}/${process.pid}/${randomBytes(4).toString('hex')}`,
    ttlMs: cfg.leaseTtl, timeoutMs: cfg.redisTimeout, channel: registry.keys.channel, log,
  });
  const report: ClusterReport = { namespace: cfg.namespace, self, ttlMs: cfg.ttl, snapshot: registry.snapshot(), duties: { holder: null, token: null, checkedAt: 0 } };
  // Not before egg-ready: the workers do not all exist yet (egg warns of every such send); they get it then.
  let started = false;
  const send = () => {
    if (started) agent.messenger.sendToApp(CLUSTER_ACTIONS.report, report);
  };
  // bumped whenever this node gains or loses the lease: a holder read sent before that is out of date
  let leaseEpoch = 0;
  const setHolder = (holder: string | null, token: number | null) => {
    const changed = holder !== report.duties.holder || token !== report.duties.token;
    report.duties = { holder, token, checkedAt: Date.now() };
    if (changed) send();
  };
  duties.onAcquire(token => {
    leaseEpoch++;
    log.info('[egg-sonofs] this node now holds the cluster-wide duties (fencing token %d)', token);
    setHolder(instance, token);
  });
  duties.onLose(reason => {
    leaseEpoch++;
    log.warn('[egg-sonofs] this node no longer holds the cluster-wide duties: %s', reason);
    setHolder(null, null);
  });
  registry.on('notice', () => duties.poke());
  registry.on('update', snap => {
    report.snapshot = snap;
    // who holds the duties, when it is not this node (one cheap read per heartbeat at most)
    if (duties.token === undefined && Date.now() - report.duties.checkedAt >= cfg.heartbeat && snap.status === 'ok') {
      report.duties.checkedAt = Date.now();
      const epoch = leaseEpoch;
      duties.holder().then(h => {
        if (epoch === leaseEpoch) setHolder(h ? h.owner.split('/')[0] : null, h ? h.token : null);
      }, () => undefined);
    }
    send(); // once per heartbeat: a few hundred bytes per worker
  });
  agent.messenger.on(CLUSTER_ACTIONS.want, send);

  // egg-cluster stops the app workers first and the agent seconds later: leave as soon as the
  // first worker closes. Should the node go on after all (one worker closed alone), join again.
  let closed = false;
  let away: NodeJS.Timeout | undefined;
  const leave = async () => {
    await duties.stop();
    await registry.leave();
  };
  const rejoin = () => {
    away = undefined;
    if (closed) return;
    log.warn('[egg-sonofs] a worker closed but the node did not: joining cluster "%s" again', cfg.namespace);
    registry.join().then(() => duties.start(), err => {
      log.error(err);
      away = setTimeout(rejoin, cfg.ttl);
      away.unref();
    });
  };
  const stopping = () => {
    if (closed || away) return;
    log.info('[egg-sonofs] workers are closing: leaving cluster "%s" now', cfg.namespace);
    away = setTimeout(rejoin, cfg.ttl + 5000);
    away.unref();
    leave().catch(err => log.error(err));
  };
  agent.messenger.on(CLUSTER_ACTIONS.stopping, stopping);
  agent.messenger.on('egg-ready', () => {
    started = true;
    registry.setState('up');
    send();
  });
  duties.start();

  return {
    registry,
    duties,
    async close() {
      closed = true;
      clearTimeout(away);
      agent.messenger.removeListener(CLUSTER_ACTIONS.want, send);
      agent.messenger.removeListener(CLUSTER_ACTIONS.stopping, stopping);
      await leave();
      log.info('[egg-sonofs] left cluster "%s"', cfg.namespace);
    },
  };
}
