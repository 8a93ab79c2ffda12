/**
 * Where a new upload goes: which group, and which of its members receives
 * the bytes. Pure: it reads the registry's entries (free bytes, load, state)
 * and decides; the caller stores locally or forwards.
 */

/** `config.sonofs.cluster.placement` */
export interface PlacementConfig {
  /** keep uploads on this node while its group is healthy (room and load within limits) */
  preferLocal: boolean;
  /** a group must keep this many bytes free after the file is stored */
  minFreeBytes: number;
  /** a group whose busiest member's load (1-minute load average per core) is above this gets uploads only when every group with room is as busy */
  maxLoad: number;
  /** how much free space and load count when several groups fit (scores are relative, 0 turns one off) */
  weights: { free: number; load: number };
}

export const DEFAULT_PLACEMENT: PlacementConfig = {
  preferLocal: true,
  minFreeBytes: 1024 ** 3,
  maxLoad: 4,
  weights: { free: 1, load: 1 },
};

/** The part of a registry entry placement needs. */
export interface PlacementNode {
  group: number;
  server: number;
  url: string;
  instance: string;
  state: string;
  free: number | null;
  total: number | null;
  load: number;
}

export interface PlacementTarget {
  group: number;
  server: number;
  /** its advertised HTTP base URL, without a trailing slash */
  url: string;
}

export type Placement =
  | { local: true }
  /** members of the chosen group to send the bytes to, best first */
  | { local: false; group: number; targets: PlacementTarget[] }
  /** nothing fits: `reason` says why, `noNode` when no node at all is up */
  | { local: null; reason: string; noNode: boolean };

interface GroupState {
  group: number;
  members: PlacementNode[];
  /** members mirror each other, so the group has as much room as its fullest member; null when none reports it */
  free: number | null;
  load: number;
}

/** Groups of the nodes that are up, and of this node whatever its state (it is the one taking the upload). */
function groupsOf(nodes: ReadonlyArray<PlacementNode>, self: string): GroupState[] {
  const by = new Map<number, PlacementNode[]>();
  for (const n of nodes) if (n.state === 'up' || n.instance === self) by.set(n.group, [ ...by.get(n.group) ?? [], n ]);
  return [ ...by ].sort((a, b) => a[0] - b[0]).map(([ group, members ]) => {
    const frees = members.map(m => m.free).filter((f): f is number => f !== null);
    return { group, members, free: frees.length ? Math.min(...frees) : null, load: Math.max(...members.map(m => m.load)) };
  });
}

/** Why a group has no room for `size` bytes, or undefined when it has (an unknown free space counts as room). */
function noRoom(g: GroupState, size: number, cfg: PlacementConfig): string | undefined {
  if (g.free !== null && g.free - size < cfg.minFreeBytes) {
    return `group ${g.group} has ${g.free} bytes free, under ${size} + ${cfg.minFreeBytes} kept free`;
  }
  return undefined;
}

const overloaded = (g: GroupState, cfg: PlacementConfig) => g.load > cfg.maxLoad;

/**
 * Picks the group for an upload of (at most) `size` bytes. The local group
 * (`self.group`) while it has room and is not overloaded, with `preferLocal`;
 * else, among the groups with room (those not overloaded, if any), the local
 * one with `preferLocal`, or the best by score: `weights.free` × its free
 * space relative to the roomiest candidate − `weights.load` × its load
 * relative to `maxLoad` (ties: the lower group number). Load only steers:
 * a cluster busy everywhere still stores; no room anywhere is the only no.
 * The local group wins only through this node itself; a forward goes to
 * another group's members, least loaded first.
 */
export function choosePlacement(
  nodes: ReadonlyArray<PlacementNode>, self: { group: number; instance: string }, size: number, cfg: PlacementConfig,
): Placement {
  const groups = groupsOf(nodes, self.instance);
  if (!groups.length) return { local: null, reason: 'no node of the cluster is up', noNode: true };
  const local = groups.find(g => g.group === self.group && g.members.some(m => m.instance === self.instance));
  const reasons: string[] = [];
  const roomy = groups.filter(g => {
    const why = noRoom(g, size, cfg);
    if (why) reasons.push(why);
    return !why;
  });
  if (!roomy.length) return { local: null, reason: reasons.join('; '), noNode: false };
  const calm = roomy.filter(g => !overloaded(g, cfg));
  const candidates = calm.length ? calm : roomy;
  if (local && cfg.preferLocal && candidates.includes(local)) return { local: true };
  const roomiest = Math.max(1, ...candidates.map(g => g.free ?? 0));
  const score = (g: GroupState) => cfg.weights.free * ((g.free ?? 0) / roomiest) - cfg.weights.load * (g.load / cfg.maxLoad);
  const best = candidates.reduce((a, b) => (score(b) > score(a) ? b : a));
  if (best === local) return { local: true };
  const targets = best.members.filter(m => m.state === 'up').sort((a, b) => a.load - b.load || a.server - b.server)
    .map(m => ({ group: m.group, server: m.server, url: m.url.replace(/\/+$/, '') }));
  return { local: false, group: best.group, targets };
}

/** A placement setting from the app's config, checked, with defaults for what it leaves out. */
export function placementConfig(given: Partial<PlacementConfig> | undefined): PlacementConfig {
  const c: PlacementConfig = { ...DEFAULT_PLACEMENT, ...given, weights: { ...DEFAULT_PLACEMENT.weights, ...given?.weights } };
  const bad = (what: string, v: unknown) => new Error(`[egg-sonofs] config.sonofs.cluster.placement.${what} ${JSON.stringify(v)}`);
  if (typeof c.preferLocal !== 'boolean') throw bad('preferLocal must be true or false, got', c.preferLocal);
  if (!Number.isSafeInteger(c.minFreeBytes) || c.minFreeBytes < 0) throw bad('minFreeBytes must be a whole number of bytes >= 0, got', c.minFreeBytes);
  if (!(c.maxLoad > 0)) throw bad('maxLoad must be a positive number, got', c.maxLoad);
  for (const k of [ 'free', 'load' ] as const) {
    if (!(c.weights[k] >= 0) || !Number.isFinite(c.weights[k])) throw bad(`weights.${k} must be a number >= 0, got`, c.weights[k]);
  }
  return c;
}
