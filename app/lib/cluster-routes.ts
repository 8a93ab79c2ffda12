import fs from 'node:fs';
import type { Application } from 'egg';
import { replicasDir } from '../../lib/replication';
import { SonofsError, UnavailableError } from '../../lib';
import { clusterView, embeddedView } from '../../lib/cluster';
import { nodeStats } from './cluster-agent';
import { clusterMapOf } from './cluster-map';
import { answeringErrorsWith, sendError } from './http-errors';
import { requireNodeSignature } from './node-routes';

const route = answeringErrorsWith(sendError);
// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../../package.json').version;
const STARTED = Date.now();

/** The members of this node's group it holds copies of (root/replicas/<group>-<server>). */
function copiedMembers(root: string, group: number, server: number): Array<{ group: number; server: number }> {
  let names: string[];
  try {
    names = fs.readdirSync(replicasDir(root));
  } catch {
    return [];
  }
  return names.flatMap(n => {
    const m = /^(\d+)-(\d+)$/.exec(n);
    return m && Number(m[1]) === group && Number(m[2]) !== server ? [ { group, server: Number(m[2]) } ] : [];
  });
}

/**
 * `GET <prefix>/cluster`: the nodes, groups, free space and health as this
 * node's agent last read them from the registry (workers never ask Redis,
 * so it answers at once even while Redis is away); a node alone answers
 * `{ mode: "embedded" }`. `GET <prefix>/cluster/node`: who this node is, for
 * other nodes (signed with the cluster secret).
 */
export function registerClusterRoutes(app: Application, prefix: string): void {
  const cfg = app.config.sonofs;
  const map = clusterMapOf(app);

  app.router.get(`${prefix}/cluster`, route(async ctx => {
    ctx.set('Cache-Control', 'no-store');
    if (!map) {
      ctx.body = embeddedView({ group: cfg.group, server: cfg.server }, nodeStats(cfg.root), VERSION, STARTED);
      return;
    }
    const report = await map.current(2000);
    if (!report) {
      throw new UnavailableError('CLUSTER_STARTING', 'this node has not heard from its agent about the cluster yet; retry in a second');
    }
    ctx.body = clusterView(report, Date.now(), copiedMembers(cfg.root, cfg.group, cfg.server));
  }));

  app.router.get(`${prefix}/cluster/node`, route(async ctx => {
    if (!map) throw new SonofsError(404, 'NOT_IN_CLUSTER', 'this node runs alone (embedded mode)');
    requireNodeSignature(ctx);
    const self = (await map.current(0))?.self;
    ctx.body = { group: cfg.group, server: cfg.server, url: cfg.cluster.advertiseUrl, instance: self?.instance ?? null, version: VERSION, pid: process.pid };
  }));
}
