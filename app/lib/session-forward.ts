import http from 'node:http';
import https from 'node:https';
import type { Application, Context } from 'egg';
import { UploadElsewhereError, nodeName } from '../../lib';
import type { UploadSessions } from '../../lib';
import { NODE_AUTH_HEADER, signNodeRequest, verifyNodeRequest } from '../../lib/cluster';
import { bytesAreHere } from '../../lib/sessions/owner';
import { publicOrigin } from '../../lib/tus';
import { clusterMapOf } from './cluster-map';
import { SESSIONS } from './symbols';
import { uploadPlacement } from './upload-placement';

// hop-by-hop headers (RFC 9110 7.6.1) and the ones this node sets itself; a client's X-Forwarded-* never
// reach another node, which trusts those of a signed request (placeNewUpload sets its own)
const NOT_FORWARDED = new Set([
  'host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', NODE_AUTH_HEADER,
  'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-prefix',
]);

/**
 * Cluster mode: a request on an upload whose bytes are on another node (its
 * reserved space is on that node's disk) is streamed there, as it came, and
 * its answer streamed back: the client sees the owner's answer (status,
 * tus headers, offsets). The owner authenticates the client's own
 * credentials as for any request; the node signature (NODE_AUTH_HEADER)
 * marks a forwarded request, which is never forwarded again.
 * When the owner is down, a member of its group that keeps a mirror of the
 * upload's acknowledged bytes (replication 'all') takes it over and serves
 * the request itself; a node of another group sends the request to such a
 * member. Resolves false when this node should handle the request itself
 * (embedded mode, its own upload, an unknown or finished one, one it just
 * took over, or a request forwarded to it).
 */
export async function forwardToUploadOwner(ctx: Context, id: string): Promise<boolean> {
  const app = ctx.app as Application;
  const map = clusterMapOf(app);
  if (!map) return false;
  const sessions = (app as any)[SESSIONS] as UploadSessions;
  const s = await sessions.get(id).catch(() => undefined); // the handler answers the 404 or 410
  const cfg = app.config.sonofs;
  const self = nodeName(cfg.group, cfg.server);
  if (!s || bytesAreHere(s, self)) return false;
  const report = await map.current();
  const nodes = report?.snapshot.nodes ?? [];
  const owner = nodes.find(n => nodeName(n.group, n.server) === s.node && n.url);
  const signed = forwardedByNode(ctx);
  const idleMs = Math.max(cfg.cluster.readTimeout, FORWARD_IDLE_MS);
  const sign = () => signNodeRequest(cfg.cluster.secret, ctx.method, ctx.originalUrl);
  if (owner) {
    if (signed) return false; // never sent on twice: the engine answers where the bytes are
    try {
      await pipeTo(ctx, `${owner.url}${ctx.originalUrl}`, sign(), s.node!, idleMs);
    } catch (err) {
      // with members keeping copies, a dead owner's upload goes on once the registry drops it
      const member = nodes.some(n => n.state === 'up' && n.group === owner.group && n.server !== owner.server);
      if (err instanceof UploadElsewhereError && cfg.cluster.replication !== 'one' && member) throw new UploadElsewhereError(s.node!, err.why, { withinMs: cfg.cluster.ttl });
      throw err;
    }
    return true;
  }
  // the owner is down (the map is current: Redis answers); should it still be writing, its writes are refused once the upload moved
  const ownerGroup = Number(s.node!.split('.')[0]);
  if (report?.snapshot.status === 'ok') {
    if (ownerGroup === cfg.group && await takeOver(app, sessions, s.id, s.node!)) return false;
    const member = nodes.find(n => n.state === 'up' && n.group === ownerGroup && n.url && nodeName(n.group, n.server) !== self);
    if (member && !signed) {
      await pipeTo(ctx, `${member.url}${ctx.originalUrl}`, sign(), nodeName(member.group, member.server), idleMs);
      return true;
    }
  }
  throw new UploadElsewhereError(s.node!, 'down');
}

/** This node takes the upload over from its dead owner, from its mirror; false when it has none whole. */
async function takeOver(app: Application, sessions: UploadSessions, id: string, dead: string): Promise<boolean> {
  try {
    const adopted = await sessions.adopt(id, dead);
    if (!adopted) return false;
    app.coreLogger.info('[egg-sonofs] took over upload %s from node %s, which is down: its %d acknowledged bytes came from this node\'s copy',
      id, dead, adopted.ranges.reduce((n, r) => n + r.end - r.start, 0));
    return true;
  } catch (err) {
    app.coreLogger.warn('[egg-sonofs] could not take over upload %s from node %s: %s', id, dead, (err as Error).message);
    return false;
  }
}

/**
 * `scheme://host[/prefix]` as the client reached the cluster: behind a
 * trusted proxy its X-Forwarded-* headers, on a request another node placed
 * here that node's view of them (placeNewUpload sets them).
 */
export function publicBase(ctx: Context): string {
  const trustProxy = ctx.app.config.proxy === true || forwardedByNode(ctx);
  const o = publicOrigin(ctx.headers, { trustProxy, encrypted: !!(ctx.req.socket as { encrypted?: boolean }).encrypted });
  return `${o.proto}://${o.host ?? ctx.host}${o.prefix}`;
}

/** The request came from another node of the cluster (signed): it was placed or forwarded already, and is never sent on again. */
export function forwardedByNode(ctx: Context): boolean {
  const secret: string = ctx.app.config.sonofs.cluster.secret;
  return !!ctx.get(NODE_AUTH_HEADER) && verifyNodeRequest(secret, ctx.method, ctx.originalUrl, ctx.get(NODE_AUTH_HEADER));
}

/**
 * Cluster mode: a request that creates an upload session (tus POST, chunked
 * init, fupload task) goes to the group placement picks for `size` bytes,
 * like a one-request upload: when that is another group, the request is
 * streamed to one of its members as it came, which creates the session
 * there (its bytes will be on that node's disk) and answers the client.
 * The client's Host and this node's public scheme and prefix go with it, so
 * the URLs in the answer are the ones the client reached. Later requests on
 * the upload reach its owner through any node (forwardToUploadOwner).
 * Resolves false when the upload stays here.
 */
export async function placeNewUpload(ctx: Context, size: number): Promise<boolean> {
  if (forwardedByNode(ctx)) return false;
  const targets = await uploadPlacement(ctx.app)?.targets(size);
  if (!targets?.length) return false;
  const cfg = ctx.app.config.sonofs;
  const encrypted = !!(ctx.req.socket as { encrypted?: boolean }).encrypted;
  const origin = publicOrigin(ctx.headers, { trustProxy: cfg.tus.trustProxy || ctx.app.config.proxy === true, encrypted });
  // what this node made of the client's headers replaces them: the target trusts a signed request's
  const keep = { host: origin.host, 'x-forwarded-host': origin.host, 'x-forwarded-proto': origin.proto, 'x-forwarded-prefix': origin.prefix || undefined };
  const idleMs = Math.max(cfg.cluster.readTimeout, FORWARD_IDLE_MS);
  // without a body still to stream (a bodyless POST, a form or JSON already read), a member that cannot be reached is passed for the next
  const again = typeof (ctx.request as { rawBody?: unknown }).rawBody === 'string' || (!ctx.get('Transfer-Encoding') && !Number(ctx.get('Content-Length')));
  for (const [ i, target ] of targets.entries()) {
    try {
      await pipeTo(ctx, `${target.url}${ctx.originalUrl}`, signNodeRequest(cfg.cluster.secret, ctx.method, ctx.originalUrl), nodeName(target.group, target.server), idleMs, keep);
      return true;
    } catch (err) {
      if (!again || i === targets.length - 1 || !(err instanceof UploadElsewhereError)) throw err;
      ctx.app.logger.warn('[egg-sonofs] placing a new upload: %s; trying the next member', (err as Error).message);
    }
  }
  return true;
}

/**
 * A forwarded request whose connection to the owner carries nothing either
 * way for this long is cut (503): a hung owner never holds the client for
 * ever. Generous, as a client may pause between the bytes of its body.
 */
const FORWARD_IDLE_MS = 30_000;

/** Streams the request to `url` and the answer back; 503 (naming the node) when it cannot be reached or falls silent. */
function pipeTo(
  ctx: Context, url: string, signature: string, node: string, idleMs: number, replace: Record<string, string | undefined> = {},
): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [ k, v ] of Object.entries(ctx.req.headers)) if (v !== undefined && !NOT_FORWARDED.has(k)) headers[k] = v;
  for (const [ k, v ] of Object.entries(replace)) {
    if (v === undefined) delete headers[k];
    else headers[k] = v;
  }
  // a body of unknown length goes framed as it came, whatever the method (Node chunks a DELETE's body only when told)
  if (ctx.req.headers['transfer-encoding'] && ctx.req.headers['content-length'] === undefined && typeof (ctx.request as { rawBody?: unknown }).rawBody !== 'string') {
    headers['transfer-encoding'] = 'chunked';
  }
  headers[NODE_AUTH_HEADER] = signature;
  // a form the body parser already read goes as it came; anything else is streamed
  const parsed = (ctx.request as { rawBody?: unknown }).rawBody;
  if (typeof parsed === 'string') headers['content-length'] = String(Buffer.byteLength(parsed));
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const out = client.request(url, { method: ctx.method, headers }, res => {
      ctx.status = res.statusCode ?? 502;
      for (const [ k, v ] of Object.entries(res.headers)) if (v !== undefined && !NOT_FORWARDED.has(k)) ctx.set(k, v as string | string[]);
      ctx.body = res; // streamed: never held whole
      resolve();
    });
    out.setTimeout(idleMs, () => out.destroy(new Error(`nothing sent or received for ${idleMs} ms`)));
    out.once('error', err => {
      ctx.req.unpipe(out);
      reject(new UploadElsewhereError(node, `unreachable: ${err.message}`));
    });
    if (typeof parsed === 'string') out.end(parsed);
    else if (!ctx.get('Transfer-Encoding') && !Number(ctx.get('Content-Length'))) out.end(); // no body (it may have ended already)
    else ctx.req.pipe(out);
    // a client gone mid-body: the owner sees the cut as it would from the client (tus keeps what arrived)
    ctx.req.once('close', () => { if (!ctx.req.complete) out.destroy(); });
  });
}
