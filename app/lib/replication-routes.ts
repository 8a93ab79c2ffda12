import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Application, Context } from 'egg';
import type { AllocationLedger, Catalog, SonofsStore } from '../../lib';
import { ConflictError, NotFoundError, UnauthorizedError, bundlePath } from '../../lib';
import { NODE_AUTH_HEADER, verifyNodeRequest } from '../../lib/cluster';
import {
  FileSource, NODE_API, ReplicaReader, copiedRecordAt, listOwnBundles, parseBundle, parseInstance, parseOffset, parsePeer, parseRanges, snapshotLedger,
  streamRecords,
} from '../../lib/replication';
import { answeringErrorsWith, sendError } from './http-errors';
import { REPLICAS } from './symbols';
import { REPLICATION_ACTIONS } from './replication-agent';

const route = answeringErrorsWith(sendError);

/** Record bytes one answer carries at most: the copier asks again for the rest. */
const ANSWER_BUDGET = 32 << 20;

/** The node's allocation ledger, which every node catalog of a worker holds (backends.ts openCatalog). */
function ledgerOf(catalog: Catalog): Pick<AllocationLedger, 'getAllocState' | 'openLeases'> {
  const c = catalog as Partial<AllocationLedger>;
  if (typeof c.getAllocState !== 'function' || typeof c.openLeases !== 'function') {
    throw new Error('[egg-sonofs] replication needs the node\'s allocation ledger, which this catalog does not hold');
  }
  return c as AllocationLedger;
}

/**
 * Cluster mode, in every worker: the node-to-node API the members of its
 * group copy its bundles through (not under the public prefix; every call
 * signed with the cluster secret, else 401), and reads of a group peer's
 * files from this node's copies.
 * - GET /_sonofs/node/bundles?instance=: this node's bundles and the bytes allocated in each
 * - GET /_sonofs/node/bundles/<n>?instance=&ranges=a-b,c-: the committed records there (lib/replication/protocol.ts)
 * - GET /_sonofs/node/replicas/<group>-<server>/<n>?instance=&offset=: the bytes of this node's copy of
 *   one record of that peer (header, data, meta), for the peer to write again over a bad record of its own
 * `instance` is the data root the caller means to copy: another node at that URL answers 409.
 */
export function registerReplicationRoutes(app: Application, store: SonofsStore): void {
  const cfg = app.config.sonofs;
  const ledger = ledgerOf(store.catalog);
  let instance: string | undefined;
  const check = (ctx: Context) => {
    if (!verifyNodeRequest(cfg.cluster.secret, ctx.method, ctx.originalUrl, ctx.get(NODE_AUTH_HEADER))) {
      throw new UnauthorizedError(`node-to-node call without a valid ${NODE_AUTH_HEADER} header (signed with config.sonofs.cluster.secret)`);
    }
    const want = parseInstance(ctx.query.instance);
    // written by the agent when it joined the cluster, before any worker started
    instance ??= fs.readFileSync(path.join(cfg.root, 'cluster-instance'), 'utf8').trim();
    if (want !== instance) throw new ConflictError('OTHER_NODE', `this node's data root is instance ${instance}, not ${want}`);
    ctx.set('Cache-Control', 'no-store');
  };

  app.router.get(`${NODE_API}/bundles`, route(async ctx => {
    check(ctx);
    ctx.body = { group: cfg.group, server: cfg.server, instance, bundles: listOwnBundles(cfg.root, await snapshotLedger(ledger)) };
  }));

  app.router.get(`${NODE_API}/bundles/:bundle`, route(async ctx => {
    check(ctx);
    const bundle = parseBundle(ctx.params.bundle);
    const ranges = parseRanges(ctx.query.ranges);
    if (!fs.existsSync(bundlePath(cfg.root, bundle))) throw new NotFoundError('NO_SUCH_BUNDLE', `this node has no bundle ${bundle}`);
    // the ledger before any byte of the bundle (see LedgerSnapshot)
    const snap = await snapshotLedger(ledger);
    ctx.type = 'application/octet-stream';
    ctx.body = Readable.from(streamRecords(cfg.root, bundle, ranges, snap, { extentSize: store.opts.extentSize, budget: ANSWER_BUDGET }), {
      objectMode: false, highWaterMark: 1 << 20,
    });
  }));

  app.router.get(`${NODE_API}/replicas/:peer/:bundle`, route(async ctx => {
    check(ctx);
    const peer = parsePeer(ctx.params.peer);
    const bundle = parseBundle(ctx.params.bundle);
    const offset = parseOffset(ctx.query.offset);
    const at = peer.group === cfg.group && peer.server !== cfg.server ? await copiedRecordAt(cfg.root, peer, bundle, offset) : undefined;
    if (!at) throw new NotFoundError('NO_COPY', `this node holds no copy of a record at offset ${offset} of bundle ${bundle} of ${peer.group}.${peer.server}`);
    ctx.type = 'application/octet-stream';
    ctx.length = at.length;
    ctx.body = fs.createReadStream(at.file, { start: at.start, end: at.start + at.length - 1, highWaterMark: 1 << 20 });
  }));

  (app as any)[REPLICAS] = new ReplicaReader(cfg.root, { group: cfg.group, server: cfg.server }, msg => app.coreLogger.error(msg),
    bad => app.messenger.sendToAgent(REPLICATION_ACTIONS.badCopy, bad));
}

/** A group peer's file from this node's copy when it holds a good one (cluster mode), else undefined. */
export function replicaCopy(ctx: Context, fileId: string): Promise<FileSource | undefined> {
  const replicas = (ctx.app as any)[REPLICAS] as ReplicaReader | undefined;
  return replicas ? replicas.open(fileId) : Promise.resolve(undefined);
}
