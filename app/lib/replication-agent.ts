import type { Agent } from 'egg';
import type { ClusterRegistry, NodeStats, RegistrySnapshot } from '../../lib/cluster';
import { BadCopy, Replicator } from '../../lib/replication';
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

/** Workers tell the agent of a copy that failed its checksum when read. */
export const REPLICATION_ACTIONS = {
  badCopy: 'sonofs-replication-bad-copy',
};

/** A copy a worker found bad is copied again from its owner (the replicator logs the repair). */
export function repairBadCopies(agent: Agent, replicator: Replicator): void {
  agent.messenger.on(REPLICATION_ACTIONS.badCopy, (bad: BadCopy) => {
    if (!replicator.repair(bad)) agent.coreLogger.warn('[egg-sonofs] replication: cannot copy again %j (not a copied record of a live peer)', bad);
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
