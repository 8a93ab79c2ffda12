import type { Application } from 'egg';
import { SonofsError, UnauthorizedError, UnavailableError } from '../../lib';
import { ClusterReport, NODE_AUTH_HEADER, clusterView, embeddedView, verifyNodeRequest } from '../../lib/cluster';
import { CLUSTER_ACTIONS, clusterEnabled, nodeStats } from './cluster-agent';
import { answeringErrorsWith, sendError } from './http-errors';

const route = answeringErrorsWith(sendError);
// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../../package.json').version;
const STARTED = Date.now();

/**
 * `GET <prefix>/cluster`: the nodes, groups, free space and health as this
 * node's agent last read them from the registry (workers never ask Redis,
 * so it answers at once even while Redis is away); a node alone answers
 * `{ mode: "embedded" }`. `GET <prefix>/cluster/node`: who this node is, for
 * other nodes (signed with the cluster secret).
 */
export function registerClusterRoutes(app: Application, prefix: string): void {
  const cfg = app.config.sonofs;
  const on = clusterEnabled(cfg.cluster);
  let report: ClusterReport | undefined;
  // requests that came before the first report (the agent sends it at egg-ready)
  let waiting: Array<() => void> = [];
  if (on) {
    app.messenger.on(CLUSTER_ACTIONS.report, (r: ClusterReport) => {
      report = r;
      for (const wake of waiting.splice(0)) wake();
    });
    app.messenger.sendToAgent(CLUSTER_ACTIONS.want, { pid: process.pid });
  }
  const firstReport = (ms: number) => new Promise<void>(resolve => {
    const timer = setTimeout(() => {
      waiting = waiting.filter(w => w !== wake);
      resolve();
    }, ms);
    const wake = () => { clearTimeout(timer); resolve(); };
    waiting.push(wake);
  });

  app.router.get(`${prefix}/cluster`, route(async ctx => {
    ctx.set('Cache-Control', 'no-store');
    if (!on) {
      ctx.body = embeddedView({ group: cfg.group, server: cfg.server }, nodeStats(cfg.root), VERSION, STARTED);
      return;
    }
    if (!report) {
      app.messenger.sendToAgent(CLUSTER_ACTIONS.want, { pid: process.pid });
      await firstReport(2000);
    }
    if (!report) {
      throw new UnavailableError('CLUSTER_STARTING', 'this node has not heard from its agent about the cluster yet; retry in a second');
    }
    ctx.body = clusterView(report);
  }));

  app.router.get(`${prefix}/cluster/node`, route(async ctx => {
    if (!on) throw new SonofsError(404, 'NOT_IN_CLUSTER', 'this node runs alone (embedded mode)');
    if (!verifyNodeRequest(cfg.cluster.secret, ctx.method, ctx.originalUrl, ctx.get(NODE_AUTH_HEADER))) {
      throw new UnauthorizedError(`node-to-node call without a valid ${NODE_AUTH_HEADER} header (signed with config.sonofs.cluster.secret)`);
    }
    const self = report?.self;
    ctx.body = { group: cfg.group, server: cfg.server, url: cfg.cluster.advertiseUrl, instance: self?.instance ?? null, version: VERSION, pid: process.pid };
  }));
}
