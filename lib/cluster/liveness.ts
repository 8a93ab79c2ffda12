import { Liveness, localLiveness, nodeName } from '../liveness';

/**
 * Liveness in a cluster: this node's own processes are asked of the OS;
 * another node's holder is alive while that node is in the registry's live
 * map (a node's pids mean nothing here, and a node that stopped beating has
 * left the map within its TTL). `nodes` returns the map as last read.
 */
export function registryLiveness(self: string, nodes: () => ReadonlyArray<{ group: number; server: number }>): Liveness {
  const local = localLiveness(self);
  return h => (h.node === self ? local(h) : nodes().some(n => nodeName(n.group, n.server) === h.node));
}
