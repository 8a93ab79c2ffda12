import type { NodeEntry, NodeIdentity, NodeStats, RegistrySnapshot } from './registry';

/** What the agent sends its workers: the registry as it last read it. */
export interface ClusterReport {
  namespace: string;
  self: NodeIdentity;
  /** this node's registry TTL: a report older than that is stale (the agent is gone or stuck) */
  ttlMs: number;
  snapshot: RegistrySnapshot;
  /** the node holding the cluster-wide duties, by the lease (instance id), and its fencing token */
  duties: { holder: string | null; token: number | null; checkedAt: number };
}

export interface NodeView {
  group: number;
  server: number;
  url: string | null;
  instance: string | null;
  state: string;
  self: boolean;
  free: number | null;
  total: number | null;
  load: number;
  version: string;
  startedAt: string;
  /** ms since its last heartbeat (null for a single node) */
  lastHeartbeatMs: number | null;
  /** the node holds the cluster-wide duties (lease) */
  duties: boolean;
  /**
   * How far its copies of its group's other members are, as of its last
   * heartbeat: 0 when its last look found nothing to copy, otherwise ms since
   * it last held everything they had acknowledged; null before its first
   * complete pass (and for a single node).
   */
  replicationLagMs: number | null;
  /** bytes of the other members' bundles it has not copied yet */
  replicationLagBytes: number | null;
  /** everything the other members acknowledged before this time is on this node */
  replicatedUpTo: string | null;
}

export interface GroupView {
  group: number;
  servers: number[];
  /** members of a group mirror each other, so the group has as much room as its fullest member */
  free: number | null;
}

/** GET <prefix>/cluster */
export interface ClusterView {
  mode: 'embedded' | 'cluster';
  namespace?: string;
  self: { group: number; server: number; url: string | null; instance: string | null };
  health: { status: 'ok' | 'degraded'; problems: string[] };
  registry?: { status: string; since: string; error: string | null; readAgoMs: number };
  duties?: { holder: { group: number; server: number; url: string } | null; token: number | null };
  nodes: NodeView[];
  groups: GroupView[];
}

function groupsOf(nodes: NodeView[]): GroupView[] {
  const by = new Map<number, NodeView[]>();
  for (const n of nodes) by.set(n.group, [ ...by.get(n.group) ?? [], n ]);
  return [ ...by ].sort((a, b) => a[0] - b[0]).map(([ group, members ]) => {
    const frees = members.map(m => m.free).filter((f): f is number => f !== null);
    return { group, servers: members.map(m => m.server), free: frees.length ? Math.min(...frees) : null };
  });
}

/** The answer of a node that runs alone (no registry). */
export function embeddedView(self: { group: number; server: number }, stats: NodeStats, version: string, startedAt: number): ClusterView {
  const node: NodeView = {
    group: self.group, server: self.server, url: null, instance: null, state: 'up', self: true, ...stats, version,
    startedAt: new Date(startedAt).toISOString(), lastHeartbeatMs: null, duties: true, replicationLagMs: null, replicationLagBytes: null,
    replicatedUpTo: null,
  };
  return {
    mode: 'embedded', self: { ...self, url: null, instance: null }, health: { status: 'ok', problems: [] }, nodes: [ node ], groups: groupsOf([ node ]),
  };
}

/**
 * The answer of a node in a cluster, from its agent's last report (`now`:
 * this process's clock, the agent's too). `copied`: the members of its group
 * whose bundles this node holds copies of (they were members once): one that
 * is not up is a problem, as its files have a copy fewer until it is back.
 */
export function clusterView(r: ClusterReport, now = Date.now(), copied: ReadonlyArray<{ group: number; server: number }> = []): ClusterView {
  const s = r.snapshot;
  const sinceRead = Math.max(now - s.readAt, 0);
  const nodes: NodeView[] = s.nodes.map((n: NodeEntry) => ({
    group: n.group, server: n.server, url: n.url, instance: n.instance, state: n.state, self: n.instance === r.self.instance,
    free: n.free, total: n.total, load: n.load, version: n.version, startedAt: new Date(n.startedAt).toISOString(),
    lastHeartbeatMs: s.redisNow - (n.expiresAt - n.ttl) + sinceRead, duties: n.instance === r.duties.holder,
    replicationLagMs: n.replication?.lagMs ?? null, replicationLagBytes: n.replication?.lagBytes ?? null,
    replicatedUpTo: typeof n.replication?.upTo === 'number' ? new Date(n.replication.upTo).toISOString() : null,
  }));
  const problems: string[] = [];
  if (sinceRead > r.ttlMs) problems.push(`the agent's last read of the registry is ${sinceRead} ms old`);
  if (s.status !== 'ok') problems.push(`registry ${s.status}${s.error ? `: ${s.error}` : ''}`);
  if (s.status === 'ok' && !nodes.some(n => n.self)) problems.push('this node is not in the registry yet');
  if (s.status === 'ok' && !r.duties.holder) problems.push('no node holds the cluster-wide duties');
  for (const m of copied) {
    if (s.status === 'ok' && !nodes.some(n => n.group === m.group && n.server === m.server && n.state === 'up')) {
      problems.push(`member ${m.group}.${m.server} of this group is not up: its files have a copy fewer until it is back (this node holds its bundles)`);
    }
  }
  const holder = nodes.find(n => n.duties);
  return {
    mode: 'cluster',
    namespace: r.namespace,
    self: { group: r.self.group, server: r.self.server, url: r.self.url, instance: r.self.instance },
    health: { status: problems.length ? 'degraded' : 'ok', problems },
    registry: { status: s.status, since: new Date(s.since).toISOString(), error: s.error, readAgoMs: s.readAt ? sinceRead : -1 },
    duties: { holder: holder ? { group: holder.group, server: holder.server, url: holder.url! } : null, token: r.duties.token },
    nodes,
    groups: groupsOf(nodes),
  };
}
