import type { Context } from 'egg';
import { decodeFileId } from '../../lib';
import type { FileSource } from '../../lib/replication';
import { RemoteFileSource } from '../../lib/cluster/remote-source';
import { clusterMapOf } from './cluster-map';
import { replicaCopy } from './replication-routes';

const REMOTE = Symbol.for('egg-sonofs#remote-source');

/**
 * Where ctx.sonofs reads a file id from: this node's bundles when the id is
 * its own (or malformed: the store says what is wrong with it), else this
 * node's good copy of a group peer's, else (cluster mode) the nodes that
 * hold it, over the node-to-node API.
 */
export async function sourceOf(ctx: Context, fileId: string): Promise<FileSource> {
  const store = ctx.app.sonofs;
  let loc;
  try {
    loc = decodeFileId(fileId);
  } catch {
    return store;
  }
  if (store.holds(loc)) return store;
  const copy = await replicaCopy(ctx, fileId);
  if (copy) return copy;
  return remoteSource(ctx) ?? store;
}

/** The worker's reader of other nodes' files; undefined in embedded mode. */
function remoteSource(ctx: Context): RemoteFileSource | undefined {
  const app = ctx.app as unknown as { [REMOTE]?: RemoteFileSource };
  const map = clusterMapOf(ctx.app);
  if (!map) return undefined;
  const cfg = ctx.app.config.sonofs;
  app[REMOTE] ??= new RemoteFileSource({
    async map() {
      const report = await map.current();
      return report && { nodes: report.snapshot.nodes, self: report.self.instance };
    },
    secret: cfg.cluster.secret,
    timeoutMs: cfg.cluster.readTimeout,
    maxBufferSize: ctx.app.sonofs.maxBufferSize,
  });
  return app[REMOTE];
}
