import { listBundles } from '../bundle/files';
import { readLayout } from '../bundle/layout';
import { lockRoot } from '../bundle/root-lock';
import { nodeName } from '../liveness';
import { RedisCatalog } from './redis-catalog';
import type { RedisClient } from './redis-client';
import { replayBundles } from './rebuild';

export interface ReindexOptions {
  /** the cluster's namespace (config.sonofs.cluster.namespace; default 'sonofs') */
  namespace?: string;
  /** read every blob's data and leave out what fails its checksum (default true) */
  verifyData?: boolean;
  /** records per batch (default 10,000) */
  batch?: number;
}

export interface ReindexResult {
  node: string;
  bundles: number;
  /** records replayed (each changed a key only where it was newer than what the key held) */
  applied: number;
  corrupt: number;
}

/**
 * Re-creates in the shared catalog (Redis) every key that one node's bundles
 * tell, from its disk: after Redis lost its data (flushed, or its persistence
 * lost the last writes), or to bring the files of a node that ran embedded
 * into a cluster. Run it for the root of every node, in any order: a record
 * changes a user's link only where it is newer than the record that last set
 * it, so records of other nodes already replayed, or changes made live, are
 * never undone, and running it twice changes nothing.
 *
 * It takes the root's lock, so the node must be stopped. Until it ends, the
 * catalog marks the node's reindex as under way, and the node refuses to start.
 */
export async function reindexNode(root: string, client: RedisClient, opts: ReindexOptions = {}): Promise<ReindexResult> {
  const layout = readLayout(root);
  if (!layout) throw new Error(`${root} holds no egg-sonofs store (no layout.json)`);
  const lock = await lockRoot(root);
  try {
    const node = nodeName(layout.group, layout.server);
    const catalog = new RedisCatalog(client, { namespace: opts.namespace, node });
    const verifyData = opts.verifyData ?? true;
    const scan = { group: layout.group, server: layout.server, extentSize: layout.extentSize, verifyData, batch: opts.batch };
    const bundles = listBundles(root);
    const done = await replayBundles(catalog, root, bundles, scan, last => ({ rebuild: { verifyData, last } }));
    return { node, bundles: bundles.length, ...done };
  } finally {
    lock.release();
  }
}
