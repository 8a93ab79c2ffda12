import { isAlive } from './pid';

/**
 * Who holds something (a lock, an upload's bytes): a process of a node. A pid
 * says nothing on another machine, so a holder names its node too, and
 * whether it is alive is asked of a Liveness: on one node, of the operating
 * system; in a cluster, of the registry for other nodes.
 */
export interface ProcessRef {
  /** the node's name (nodeName) */
  node: string;
  pid: number;
}

export type Liveness = (holder: ProcessRef) => boolean;

/** A node's name in holders and sessions: its group and server, which its file ids carry. */
export function nodeName(group: number, server: number): string {
  return `${group}.${server}`;
}

/**
 * Liveness seen from one node with no registry: its own processes are asked
 * of the OS; another node's holder is taken for dead (a node alone has no
 * other node to wait for).
 */
export function localLiveness(self: string): Liveness {
  return h => h.node === self && isAlive(h.pid);
}
