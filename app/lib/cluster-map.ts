import type { Application } from 'egg';
import type { ClusterReport } from '../../lib/cluster';
import type { Liveness } from '../../lib/liveness';
import { registryLiveness } from '../../lib/cluster';
import { CLUSTER_ACTIONS, clusterEnabled } from './cluster-agent';

const MAP = Symbol.for('egg-sonofs#cluster-map');

/**
 * A worker's copy of the cluster map: the agent's last ClusterReport, which
 * the agent sends with every heartbeat and whenever the map changes (workers
 * never ask Redis themselves).
 */
export class WorkerClusterMap {
  private report: ClusterReport | undefined;
  // requests that came before the first report (the agent sends it at egg-ready)
  private waiting: Array<() => void> = [];

  constructor(private readonly app: Application) {
    app.messenger.on(CLUSTER_ACTIONS.report, (r: ClusterReport) => {
      this.report = r;
      for (const wake of this.waiting.splice(0)) wake();
    });
    this.ask();
  }

  /** The agent's last report; before the first one, asks for it and waits up to `ms`. */
  async current(ms = 2000): Promise<ClusterReport | undefined> {
    if (this.report) return this.report;
    this.ask();
    await new Promise<void>(resolve => {
      const wake = () => { clearTimeout(timer); resolve(); };
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter(w => w !== wake);
        resolve();
      }, ms);
      this.waiting.push(wake);
    });
    return this.report;
  }

  /** The live nodes as of the last report; undefined before the first one. */
  nodes(): ReadonlyArray<{ group: number; server: number }> | undefined {
    return this.report?.snapshot.nodes;
  }

  private ask() {
    this.app.messenger.sendToAgent(CLUSTER_ACTIONS.want, { pid: process.pid });
  }
}

/** The worker's cluster map (one per worker, made at the first call); undefined in embedded mode. */
export function clusterMapOf(app: Application): WorkerClusterMap | undefined {
  if (!clusterEnabled(app.config.sonofs.cluster)) return undefined;
  const a = app as unknown as { [MAP]?: WorkerClusterMap };
  a[MAP] ??= new WorkerClusterMap(app);
  return a[MAP];
}

/**
 * Whether a lock holder is alive, for a worker's upload sessions in cluster
 * mode: another node's while the registry lists it. Before the worker's first
 * report another node's holder counts as alive (its lock still ends with its
 * TTL). The map is made at the first question, not at boot, so that its first
 * report is asked for when needed. Undefined in embedded mode.
 */
export function workerLiveness(app: Application, self: string): Liveness | undefined {
  if (!clusterEnabled(app.config.sonofs.cluster)) return undefined;
  return h => {
    const nodes = clusterMapOf(app)!.nodes();
    return nodes || h.node === self ? registryLiveness(self, () => nodes ?? [])(h) : true;
  };
}
