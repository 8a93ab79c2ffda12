import type { Agent } from 'egg';
import type { ClusterRegistry, NodeStats, RegistrySnapshot } from '../../lib/cluster';
import { Replicator } from '../../lib/replication';
import { clusterEnabled } from './cluster-agent';

/**
 * Cluster mode in the agent: the copies of the bundles of this node's group
 * peers (lib/replication/replicator.ts). Undefined in embedded mode.
 */
export function startReplication(agent: Agent, root: string): Replicator | undefined {
  const cfg = agent.config.sonofs;
  if (!clusterEnabled(cfg.cluster)) return undefined;
  return new Replicator({
    root, self: { group: cfg.group, server: cfg.server }, secret: cfg.cluster.secret, intervalMs: cfg.cluster.replicationInterval, log: agent.coreLogger,
  });
}

/** Copies from the live members of the registry's map; while Redis is away, from those it last knew. */
export function followRegistry(replicator: Replicator, registry: ClusterRegistry): void {
  const follow = (snap: RegistrySnapshot) => {
    if (snap.status === 'ok') replicator.setPeers(snap.nodes.filter(n => n.state === 'up'));
  };
  registry.on('update', follow);
  follow(registry.snapshot());
}

/** What each heartbeat says about the copies. */
export function replicationStats(replicator: Replicator | undefined): Partial<NodeStats> {
  if (!replicator) return {};
  const { lagBytes, lagMs, upTo } = replicator.report();
  return { replication: { lagBytes, lagMs, upTo } };
}
