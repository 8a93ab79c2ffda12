import type { Application, Context } from 'egg';
import { UnauthorizedError, decodeFileId } from '../../lib';
import { NODE_AUTH_HEADER, NODE_FILE_PATH, verifyNodeRequest } from '../../lib/cluster';
import { clusterEnabled } from './cluster-agent';
import { idName, sendStoredFile } from './file-response';
import { answeringErrorsWith, sendError } from './http-errors';
import { replicaCopy } from './replication-routes';

const route = answeringErrorsWith(sendError);

/** 401 unless the request is signed with the cluster secret for its method and path. */
export function requireNodeSignature(ctx: Context): void {
  if (!verifyNodeRequest(ctx.app.config.sonofs.cluster.secret, ctx.method, ctx.originalUrl, ctx.get(NODE_AUTH_HEADER))) {
    throw new UnauthorizedError(`node-to-node call without a valid ${NODE_AUTH_HEADER} header (signed with config.sonofs.cluster.secret)`);
  }
}

/**
 * The node-to-node API, outside the public prefix and only in cluster mode:
 * GET/HEAD `/_sonofs/node/file/<fileid>` serves a file this node holds, as
 * the public download does (Range, ETag, conditional requests), to another
 * node that reads it for its client: its own file, or a group peer's from
 * this node's good copy. The id is parsed like any other (no path is taken
 * from it), and an id this node has no bytes of is a 404 (never passed on
 * again). The name is the id's: the caller sets its user's own.
 */
export function registerNodeRoutes(app: Application): void {
  if (!clusterEnabled(app.config.sonofs.cluster)) return;
  app.router.get(`${NODE_FILE_PATH}:fileid`, route(async ctx => {
    requireNodeSignature(ctx);
    const id: string = ctx.params.fileid;
    const copy = ctx.app.sonofs.holds(decodeFileId(id)) ? undefined : await replicaCopy(ctx, id);
    await sendStoredFile(ctx, id, async st => idName(st), copy);
  }));
}
