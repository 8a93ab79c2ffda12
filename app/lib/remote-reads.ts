import contentDisposition from 'content-disposition';
import type { Application, Context } from 'egg';
import type { FileLocation } from '../../lib';
import { NodeUnavailableError, NotFoundError } from '../../lib';
import { FORWARDED_REQUEST_HEADERS, RemoteReadOptions, readCandidates, readFromNodes } from '../../lib/cluster';
import { clusterMapOf } from './cluster-map';

/** The caller's own name for content with this sha1, if they have one. */
export type NameOf = (sha1: string) => Promise<string | undefined>;

export interface RemoteReads {
  /** Answers a download of a file another node holds: streamed from it, or a 307 to it. */
  answer(ctx: Context, fileId: string, loc: FileLocation, nameOf: NameOf): Promise<void>;
}

/**
 * Downloads of other nodes' file ids, in cluster mode (undefined in embedded
 * mode, where such an id stays a 404). The node to ask comes from the
 * worker's cluster map (readCandidates); `cluster.remoteReads` says whether
 * to stream the file through this node or send the client there.
 */
export function remoteReads(app: Application, prefix: string): RemoteReads | undefined {
  const map = clusterMapOf(app);
  if (!map) return undefined;
  const cfg = app.config.sonofs.cluster;
  if (cfg.remoteReads !== 'proxy' && cfg.remoteReads !== 'redirect') {
    throw new Error(`[egg-sonofs] config.sonofs.cluster.remoteReads must be 'proxy' or 'redirect', got ${JSON.stringify(cfg.remoteReads)}`);
  }
  if (!(cfg.readTimeout > 0)) throw new Error(`[egg-sonofs] config.sonofs.cluster.readTimeout must be a positive number of ms, got ${cfg.readTimeout}`);

  return {
    async answer(ctx, fileId, loc, nameOf) {
      const report = await map.current();
      if (!report) throw new NodeUnavailableError(loc.group, loc.server, 'this node has not heard from its agent about the cluster yet');
      // the file's own server first, then the members of its group, which hold copies of its bundles
      const candidates = readCandidates(report.snapshot.nodes, loc, { self: report.self.instance, groupCopies: true });
      if (cfg.remoteReads === 'redirect' && candidates.length) {
        // the URL comes from the cluster map, not the client (egg-security's redirect would check it against
        // the app's domain white list); the map changes, so the answer must not be kept
        const url = `${candidates[0].url}${prefix}/download?fileid=${fileId}`;
        ctx.status = 307;
        ctx.set('Location', url);
        ctx.set('Cache-Control', 'no-store');
        ctx.type = 'text/plain';
        ctx.body = `Redirecting to ${url}.`;
        return;
      }
      const headers: RemoteReadOptions['headers'] = {};
      for (const h of FORWARDED_REQUEST_HEADERS) {
        const v = ctx.get(h);
        if (v) headers[h] = v;
      }
      const method = ctx.method === 'HEAD' ? 'HEAD' : 'GET';
      let answer;
      try {
        answer = await readFromNodes(candidates, loc, fileId, { secret: cfg.secret, method, headers, timeoutMs: cfg.readTimeout });
      } catch (err) {
        if (err instanceof NodeUnavailableError) ctx.logger.warn('[egg-sonofs] %s: %s', err.message, err.details.join('; ') || 'no candidate');
        throw err;
      }
      const { status, body } = answer;
      if (status === 404) {
        body.resume();
        throw new NotFoundError('FILE_NOT_FOUND', 'no file has this fileid');
      }
      // the caller's own name of the file, when they have one (the serving node does not know the caller)
      const etag = /^"([0-9a-f]{40})"$/.exec(answer.headers.etag ?? '');
      const name = (status === 200 || status === 206) && etag ? await nameOf(etag[1]).catch(() => undefined) : undefined;
      const bodiless = method === 'HEAD' || status === 304;
      if (!bodiless && body.destroyed && !body.complete) throw new NodeUnavailableError(loc.group, loc.server, 'its answer was cut');
      ctx.status = status;
      for (const [ h, v ] of Object.entries(answer.headers)) ctx.set(h, v);
      if (name) ctx.set('Content-Disposition', contentDisposition(name));
      if (bodiless) {
        body.resume();
        return;
      }
      // An answer cut mid-way must not look whole to the client: cut its response too.
      body.once('close', () => {
        if (!body.complete) ctx.res.destroy();
      });
      ctx.body = body;
    },
  };
}
