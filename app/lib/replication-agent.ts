import type { Agent } from 'egg';
import type { ClusterRegistry, NodeStats, RegistrySnapshot } from '../../lib/cluster';
import { BadCopy, BadOwnRecord, Replicator, repairOwnRecord } from '../../lib/replication';
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
  /** a worker found a record of this node's own bundles bad (a BadOwnRecord) */
  ownBad: 'sonofs-replication-own-bad',
  /** the agent wrote it again, or found it intact: to every worker */
  ownRepaired: 'sonofs-replication-own-repaired',
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

/**
 * A record of this node's own bundles that a worker found bad is written
 * again from a live member's copy (one repair at a time per record); every
 * worker is told once it is good, so it serves the record itself again.
 */
export function repairOwnRecords(agent: Agent, registry: ClusterRegistry, root: string): void {
  const cfg = agent.config.sonofs;
  const running = new Set<string>();
  agent.messenger.on(REPLICATION_ACTIONS.ownBad, (bad: BadOwnRecord) => {
    const key = `${bad.bundle}:${bad.offset}`;
    if (running.has(key)) return;
    running.add(key);
    const members = registry.snapshot().nodes.filter(n => n.state === 'up');
    const self = { group: cfg.group, server: cfg.server };
    repairOwnRecord(bad, members, { root, self, secret: cfg.cluster.secret, timeoutMs: cfg.cluster.readTimeout })
      .then(done => {
        if (done.state === 'repaired') {
          agent.coreLogger.info('[egg-sonofs] replication: repaired this node\'s record of %s at offset %d of bundle %d (it had failed its checksum; written again from the copy of %s)',
            bad.fileId, bad.offset, bad.bundle, done.from);
        } else {
          agent.coreLogger.info('[egg-sonofs] replication: this node\'s record of %s at offset %d of bundle %d reads intact now', bad.fileId, bad.offset, bad.bundle);
        }
        agent.messenger.sendToApp(REPLICATION_ACTIONS.ownRepaired, { bundle: bad.bundle, offset: bad.offset });
      })
      .catch(err => agent.coreLogger.error('[egg-sonofs] replication: cannot repair this node\'s record of %s at offset %d of bundle %d: %s',
        bad.fileId, bad.offset, bad.bundle, (err as Error).message))
      .finally(() => running.delete(key));
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
