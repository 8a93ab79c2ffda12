import type { Agent, IBoot } from 'egg';
import {
  checkNodeOptions, nodeName, openNodeLeader, openSessionStore, serveAllocations, sweepSessions, sweepTakeovers, MetadataBackend, SessionStore, ACTIONS,
} from './lib';
import { registryLiveness } from './lib/cluster/liveness';
import { LEADER } from './app/lib/symbols';
import { startFuploadAgent } from './app/lib/fupload-agent';
import { startClusterAgent } from './app/lib/cluster-agent';
import {
  answerCopyRequests, followRegistry, repairBadCopies, repairOwnRecords, replicationStats, startReplication,
} from './app/lib/replication-agent';
import { agentBackend } from './app/lib/metadata-backend';

/**
 * The agent is the node's leader: it recovers the catalog from the bundles,
 * then answers the workers' space requests. It starts before any worker.
 */
export default class SonofsAgentBoot implements IBoot {
  private leader: Awaited<ReturnType<typeof openNodeLeader>> | undefined;
  private sessions: SessionStore | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private fupload: ReturnType<typeof startFuploadAgent>;
  private stopServing: (() => void) | undefined;
  private cluster: Awaited<ReturnType<typeof startClusterAgent>>;
  private replication: ReturnType<typeof startReplication>;

  constructor(private readonly agent: Agent) {}

  async didLoad(): Promise<void> {
    const opts = checkNodeOptions(this.agent.config.sonofs);
    const started = Date.now();
    const node = nodeName(opts.group, opts.server);
    this.leader = await openNodeLeader(opts, node, await agentBackend(this.agent));
    (this.agent as any)[LEADER] = this.leader;
    const { mode, applied, corrupt, verifiedData, tornByOsCrash, outdatedFormat, unfinishedRebuild, adoptedLayout } = this.leader.recovery;
    if (adoptedLayout.length) this.agent.coreLogger.warn('[egg-sonofs] %s/layout.json now pins %s as configured', opts.root, adoptedLayout.join(', '));
    if (tornByOsCrash) this.agent.coreLogger.warn('[egg-sonofs] the system went down with the catalog open: rebuilding it from the bundles');
    if (outdatedFormat) this.agent.coreLogger.warn('[egg-sonofs] the catalog was in an older format: rebuilding it from the bundles');
    if (unfinishedRebuild) this.agent.coreLogger.warn('[egg-sonofs] the last rebuild of the catalog was cut short: rebuilding it again');
    if ('sharedCatalogEmpty' in this.leader.recovery && this.leader.recovery.sharedCatalogEmpty) {
      this.agent.coreLogger.warn('[egg-sonofs] the shared catalog in Redis is empty but %s has bundles: if Redis lost its data, stop every node and run `sonofs reindex` for each root', opts.root);
    }
    this.agent.coreLogger.info('[egg-sonofs] leader ready in %d ms: %s applied %d records (%d corrupt; data %s) under %s',
      Date.now() - started, mode, applied, corrupt, verifiedData ? 'checked' : 'not read', opts.root);
    this.stopServing = serveAllocations(this.agent.messenger as any, this.leader.allocator, err => this.agent.coreLogger.error(err));
    // cluster mode: registers the node (refuses to start on a taken group and server)
    this.replication = startReplication(this.agent, opts.root);
    this.cluster = await startClusterAgent(this.agent, opts.root, () => replicationStats(this.replication));
    // cluster mode: the sessions are in Redis, their locks' holders judged alive by the registry
    const registry = this.cluster?.registry;
    const liveness = registry && registryLiveness(node, () => registry.snapshot().nodes);
    this.startSweeper({ root: opts.root, node }, await agentBackend(this.agent, liveness));
    // copies the bundles of its group's other live members (cluster mode)
    if (this.cluster && this.replication) {
      followRegistry(this.replication, this.cluster.registry);
      repairBadCopies(this.agent, this.replication);
      repairOwnRecords(this.agent, this.cluster.registry, opts.root);
      answerCopyRequests(this.agent, this.replication);
    }
    // Workers that outlived a previous agent re-send what was in flight.
    this.agent.messenger.on('egg-ready', () => this.agent.messenger.sendToApp(ACTIONS.leaderUp, { pid: process.pid }));
  }

  /**
   * One sweep of abandoned uploads per node, in the agent, so workers never
   * race over it. In cluster mode too each node sweeps only the sessions
   * whose bytes are on its disk (the shared store's `expired` answers per
   * node): only the owner can give its reserved space back.
   */
  private startSweeper(self: { root: string; node: string }, backend: MetadataBackend): void {
    const sessions = this.sessions = openSessionStore(self.root, self.node, backend);
    // fupload tasks: callbacks (with retries, resumed after a restart) and a "-1" for an expired task
    const fupload = this.fupload = startFuploadAgent(this.agent, sessions, self.node);
    let running = false;
    this.sweeper = setInterval(() => {
      if (running) return;
      running = true;
      sweepSessions(sessions, self.root, Date.now(), fupload?.onExpire)
        .then(n => {
          if (!n) return;
          this.agent.coreLogger.info('[egg-sonofs] removed %d expired uploads', n);
          fupload?.afterSweep();
        })
        .then(() => sweepTakeovers(sessions, self.root, self.node))
        .then(({ released }) => {
          if (released) this.agent.coreLogger.info('[egg-sonofs] gave back the space of %d upload(s) another node took over while this one was down', released);
        })
        .catch(err => this.agent.coreLogger.error(err))
        .finally(() => { running = false; });
    }, this.agent.config.sonofs.uploads.sweepInterval);
    this.sweeper.unref();
  }

  async beforeClose(): Promise<void> {
    await this.cluster?.close(); // out of the registry at once, before anything else stops
    await this.replication?.close();
    clearInterval(this.sweeper);
    this.stopServing?.();
    await this.fupload?.close();
    await this.sessions?.close();
    // Syncs the catalog and marks it clean, unless a worker still has it open.
    await this.leader?.catalog.close({ last: true });
    this.leader?.lock.release();
  }
}
