import type { Application, IBoot } from 'egg';
import {
  AgentExtentSource, SonofsStore, UploadSessions, checkNodeOptions, nodeName, openCatalog, openSessionStore,
} from './lib';
import { registerRoutes } from './app/lib/routes';
import { registerChunkedRoutes } from './app/lib/chunked-routes';
import { registerFuploadRoutes } from './app/lib/fupload-routes';
import { registerStatusRoute } from './app/lib/status-route';
import { requestDrain } from './app/lib/drain';
import { configureOwnRoutes } from './app/lib/own-routes';
import { SESSIONS, STORE } from './app/lib/symbols';
import { registerTusRoutes } from './app/lib/tus/routes';
import { registerClusterRoutes } from './app/lib/cluster-routes';
import { registerNodeRoutes } from './app/lib/node-routes';
import { CLUSTER_ACTIONS, clusterEnabled } from './app/lib/cluster-agent';
import { registerReplicationRoutes } from './app/lib/replication-routes';
import { workerBackend } from './app/lib/metadata-backend';
import { workerLiveness } from './app/lib/cluster-map';
import { copyRecordHook, registerCopyNowRoute } from './app/lib/replication-ack';
import { registerSessionBytesRoute, sessionMirrorHook } from './app/lib/session-mirror';

/** Each app worker writes and reads bytes itself, with space leased from the agent. */
export default class SonofsAppBoot implements IBoot {
  private store: SonofsStore | undefined;
  private source: AgentExtentSource | undefined;
  private sessions: UploadSessions | undefined;

  /** set once beforeClose has closed the LMDB environments */
  private closed = false;

  constructor(private readonly app: Application) {
    // A worker whose master vanished (killed) is ended by node's cluster
    // module with process.exit() while its LMDB environments are still open;
    // lmdb's exit hook then closes them and can wait forever on a write in
    // flight, leaving an orphan process. Every write is crash-safe, so such a
    // worker ends the way a crash would. (Not in tests: it would kill mocha.)
    if (app.config.env !== 'unittest') {
      process.once('exit', () => {
        if (!this.closed) process.kill(process.pid, 'SIGKILL');
      });
    }
  }

  configDidLoad(): void {
    configureOwnRoutes(this.app);
    // first of all, so it sees every request until its response is done
    this.app.config.coreMiddleware.unshift('sonofsDrain');
  }

  async didLoad(): Promise<void> {
    const cfg = this.app.config.sonofs;
    const opts = checkNodeOptions(cfg);
    const node = nodeName(opts.group, opts.server);
    this.source = new AgentExtentSource(this.app.messenger as any);
    this.store = new SonofsStore(opts, openCatalog(opts.root, node, workerBackend(this.app)), this.source, copyRecordHook(this.app));
    (this.app as any)[STORE] = this.store;
    const u = cfg.uploads;
    // cluster mode: sessions in Redis, another node's lock holder alive while that node is in the registry
    this.sessions = new UploadSessions(this.store, openSessionStore(opts.root, node, workerBackend(this.app, workerLiveness(this.app, node))), {
      root: opts.root, node, ttlMs: u.ttl, doneTtlMs: u.doneTtl, lockTimeoutMs: u.lockTimeout, fsync: opts.fsync, maxFileSize: opts.maxFileSize,
      maxOpenPerUser: u.maxOpenPerUser, mirror: sessionMirrorHook(this.app),
      // cluster mode: a session's space is on the node its POST was placed on, from the start
      lazyMax: clusterEnabled(cfg.cluster) ? 0 : cfg.tus.wholePatchMax,
    });
    (this.app as any)[SESSIONS] = this.sessions;
    registerTusRoutes(this.app);
    if (cfg.routes) {
      registerRoutes(this.app, cfg.prefix);
      registerChunkedRoutes(this.app, cfg.prefix);
      registerStatusRoute(this.app, cfg.prefix);
      registerClusterRoutes(this.app, cfg.prefix);
    }
    registerFuploadRoutes(this.app);
    // other nodes read this node's files through it, whatever routes the app mounts
    registerNodeRoutes(this.app);
    if (clusterEnabled(cfg.cluster)) {
      registerReplicationRoutes(this.app, this.store);
      registerCopyNowRoute(this.app);
      registerSessionBytesRoute(this.app);
    }
  }

  async beforeClose(): Promise<void> {
    // the node is going down: its agent leaves the cluster registry now, not after the workers
    this.app.messenger.sendToAgent(CLUSTER_ACTIONS.stopping, { pid: process.pid });
    // Requests in flight finish first (the server already refuses new connections).
    await requestDrain(this.app).drained(3000);
    this.source?.close();
    await this.sessions?.close();
    await this.store?.close();
    await this.store?.catalog.close();
    this.closed = true;
  }
}
