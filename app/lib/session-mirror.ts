import type { Application } from 'egg';
import { BadRequestError, SessionOptions, checkSessionId, mirrorRange, nodeName, readSessionData } from '../../lib';
import { SESSION_BYTES_PATH, pushSessionBytes } from '../../lib/replication';
import { clusterEnabled } from './cluster-agent';
import { groupPeerOf, wholeNumber } from './node-query';
import { clusterMapOf } from './cluster-map';
import { answeringErrorsWith, sendError } from './http-errors';
import { requireNodeSignature } from './node-routes';
import { copyTimeoutMs } from './replication-ack';

const route = answeringErrorsWith(sendError);

/**
 * Cluster mode, replication 'all', in the worker that receives an upload's
 * bytes: before a write of an unfinished upload is answered, its bytes are
 * sent to every live member of the group (their mirror, lib/sessions/mirror.ts),
 * so one of them can take the upload over should this node die. A member
 * that does not confirm is logged and named in the session (it may not take
 * the upload over); the write is still answered, as it is durable here. Undefined in embedded mode and with replication 'one'.
 */
export function sessionMirrorHook(app: Application): SessionOptions['mirror'] {
  const cfg = app.config.sonofs;
  if (!clusterEnabled(cfg.cluster) || cfg.cluster.replication === 'one') return undefined;
  return async (s, range) => {
    const report = await clusterMapOf(app)!.current();
    const members = report?.snapshot.nodes.filter(n => n.state === 'up' && n.group === cfg.group && n.server !== cfg.server && n.url) ?? [];
    if (!members.length) return [];
    const acks = await pushSessionBytes(members, { id: s.id, ...range, open: () => readSessionData(cfg.root, s, range.start, range.end) }, {
      self: { group: cfg.group, server: cfg.server }, secret: cfg.cluster.secret, timeoutMs: copyTimeoutMs(cfg.cluster, range.end - range.start),
    });
    const missed: string[] = [];
    for (const a of acks) {
      if (a.copied) continue;
      missed.push(nodeName(a.member.group, a.member.server));
      app.coreLogger.warn('[egg-sonofs] replication: %d.%d did not confirm its copy of bytes [%d, %d) of upload %s (%s); should this node die, it cannot take the upload over',
        a.member.group, a.member.server, range.start, range.end, s.id, a.why);
    }
    return missed;
  };
}

/**
 * The member's side: PUT `/_sonofs/node/session-bytes?session=&start=&end=&group=&server=`
 * (signed; body: exactly end - start bytes) keeps them in this node's mirror
 * of that upload, synced, and answers `{"crc": <crc32c of what it wrote>}`.
 * Only from another member of its own group; takes numbers and a checked id, never a path.
 */
export function registerSessionBytesRoute(app: Application): void {
  const cfg = app.config.sonofs;
  app.router.put(SESSION_BYTES_PATH, route(async ctx => {
    requireNodeSignature(ctx);
    const q = ctx.query;
    groupPeerOf(q, cfg, 'keeps the uploads');
    const id = checkSessionId(q.session);
    const start = wholeNumber(q.start, 'start');
    const end = wholeNumber(q.end, 'end');
    if (end <= start || end > cfg.maxFileSize) throw new BadRequestError('INVALID_RANGE', `[${start}, ${end}) is not a range of an upload of at most ${cfg.maxFileSize} bytes`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { crc: await mirrorRange(cfg.root, id, start, end, ctx.req) };
  }));
}
