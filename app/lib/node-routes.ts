import type { Application, Context } from 'egg';
import { BadRequestError, UnauthorizedError, UploadAbortedError, decodeFileId } from '../../lib';
import { NODE_AUTH_HEADER, NODE_FILE_PATH, NODE_UPLOAD_PATH, verifyNodeRequest } from '../../lib/cluster';
import { clusterEnabled } from './cluster-agent';
import { idName, sendStoredFile } from './file-response';
import { answeringErrorsWith, sendError } from './http-errors';
import { badOwnRecord, checkedOwnSource } from './file-sources';
import { replicaCopy } from './replication-routes';
import { uploadPlacement } from './upload-placement';

const route = answeringErrorsWith(sendError);

/** 401 unless the request is signed with the cluster secret for its method and path. */
export function requireNodeSignature(ctx: Context): void {
  if (!verifyNodeRequest(ctx.app.config.sonofs.cluster.secret, ctx.method, ctx.originalUrl, ctx.get(NODE_AUTH_HEADER))) {
    throw new UnauthorizedError(`node-to-node call without a valid ${NODE_AUTH_HEADER} header (signed with config.sonofs.cluster.secret)`);
  }
}

function throwBad(fileId: string): never {
  throw badOwnRecord(fileId);
}

/**
 * The node-to-node API, outside the public prefix and only in cluster mode:
 * GET/HEAD `/_sonofs/node/file/<fileid>` serves a file this node holds, as
 * the public download does (Range, ETag, conditional requests), to another
 * node that reads it for its client: its own file, or a group peer's from
 * this node's good copy. The id is parsed like any other (no path is taken
 * from it), and an id this node has no bytes of is a 404 (never passed on
 * again). The name is the id's: the caller sets its user's own.
 *
 * POST `/_sonofs/node/upload?user=&name=&mime=&bound=` stores the body (raw bytes)
 * for that user, as another node's client uploaded it there and placement
 * chose this node's group: it answers the stored file's UploadResult. It
 * stores here whatever the map says (no second placement, so no loops) and
 * takes no path from its input.
 */
export function registerNodeRoutes(app: Application): void {
  if (!clusterEnabled(app.config.sonofs.cluster)) return;
  uploadPlacement(app); // checks config.sonofs.cluster.placement at start, not at the first upload
  app.router.get(`${NODE_FILE_PATH}:fileid`, route(async ctx => {
    requireNodeSignature(ctx);
    const id: string = ctx.params.fileid;
    const loc = decodeFileId(id);
    // a bad own record answers 500, so the caller asks a member of the group next
    const from = ctx.app.sonofs.holds(loc) ? await checkedOwnSource(ctx.app, id, loc) ?? throwBad(id) : await replicaCopy(ctx, id);
    await sendStoredFile(ctx, id, async st => idName(st), from ?? ctx.app.sonofs); // never passed on again
  }));
  app.router.post(NODE_UPLOAD_PATH, route(async ctx => {
    requireNodeSignature(ctx);
    const q = (k: string) => (typeof ctx.query[k] === 'string' ? ctx.query[k] as string : undefined);
    const user = q('user');
    if (!user) throw new BadRequestError('MISSING_PARAM', 'user is required');
    const length = ctx.get('content-length');
    const size = length ? Number(length) : undefined;
    const rawBound = q('bound');
    const bound = rawBound === undefined ? size : Number(rawBound);
    if (bound !== undefined && !(Number.isSafeInteger(bound) && bound >= 0)) throw new BadRequestError('INVALID_PARAM', 'bound must be a whole number of bytes');
    // a forwarding node that dies mid-way must not leave a file that looks whole
    const req = ctx.req;
    const onClose = () => {
      if (!req.complete) req.destroy(new UploadAbortedError());
    };
    req.once('close', onClose);
    try {
      ctx.body = await ctx.app.sonofs.upload(req, { user, filename: q('name'), mime: q('mime'), size, sizeBound: bound });
    } finally {
      req.off('close', onClose);
    }
  }));
}
