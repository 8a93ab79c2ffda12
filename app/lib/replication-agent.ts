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

/** Workers tell the agent of a copy that failed its checksum when read, and ask it to copy a peer's new record now. */
export const REPLICATION_ACTIONS = {
  badCopy: 'sonofs-replication-bad-copy',
  copyNow: 'sonofs-replication-copy-now',
  copied: 'sonofs-replication-copied',
};

/** A worker asks: has this node copied [start, end) of that peer's bundle (within timeoutMs)? */
export interface CopyNowRequest {
  id: number;
  pid: number;
  peer: { group: number; server: number; instance: string };
  bundle: number;
  start: number;
  end: number;
  timeoutMs: number;
}

export interface CopyNowReply {
  id: number;
  copied: boolean;
}

/** A group peer's writer waits for its new record to be here (replication 'all'): copied at once, then answered. */
export function answerCopyRequests(agent: Agent, replicator: Replicator): void {
  agent.messenger.on(REPLICATION_ACTIONS.copyNow, (req: CopyNowRequest) => {
    const { id, pid, peer, bundle, start, end, timeoutMs } = req;
    replicator.whenCopied(peer, { bundle, start, end }, timeoutMs)
      .catch(err => {
        agent.coreLogger.error(err);
        return false;
      })
      .then(copied => agent.messenger.sendTo(pid, REPLICATION_ACTIONS.copied, { id, copied } satisfies CopyNowReply));
  });
}

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
