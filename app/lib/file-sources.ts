import type { Application, Context } from 'egg';
import { CorruptRecordError, FileLocation, NodeUnavailableError, decodeFileId } from '../../lib';
import { BadOwnRecord, CheckedOwnReads, FileSource } from '../../lib/replication';
import { RemoteFileSource } from '../../lib/cluster/remote-source';
import { clusterMapOf } from './cluster-map';
import { REPLICATION_ACTIONS } from './replication-agent';
import { replicaCopy } from './replication-routes';

const REMOTE = Symbol.for('egg-sonofs#remote-source');
const OWN = Symbol.for('egg-sonofs#own-reads');

/**
 * Where ctx.sonofs reads a file id from: this node's bundles when the id is
 * its own (or malformed: the store says what is wrong with it), else this
 * node's good copy of a group peer's, else (cluster mode) the nodes that
 * hold it, over the node-to-node API. In cluster mode an own record that
 * fails its checksum is read from the members of the group instead.
 */
export async function sourceOf(ctx: Context, fileId: string): Promise<FileSource> {
  const store = ctx.app.sonofs;
  let loc;
  try {
    loc = decodeFileId(fileId);
  } catch {
    return store;
  }
  if (store.holds(loc)) {
    const own = await checkedOwnSource(ctx.app, fileId, loc);
    if (own) return own;
    const members = remoteSource(ctx);
    return members ? fromMembers(members, fileId) : store;
  }
  const copy = await replicaCopy(ctx, fileId);
  if (copy) return copy;
  return remoteSource(ctx) ?? store;
}

/**
 * This node's own file, checked (cluster mode), or the store itself
 * (embedded: no other copy to turn to, its own checks apply); undefined when
 * the record is bad and read from members. The node-to-node route uses it
 * too, so a bad record is never passed to another node.
 */
export async function checkedOwnSource(app: Application, fileId: string, loc: FileLocation): Promise<FileSource | undefined> {
  const own = ownReads(app);
  return own ? own.open(fileId, loc) : app.sonofs;
}

/** The worker's checked reads of its own records; undefined in embedded mode. */
function ownReads(app: Application): CheckedOwnReads | undefined {
  const holder = app as unknown as { [OWN]?: CheckedOwnReads };
  if (holder[OWN] || !clusterMapOf(app)) return holder[OWN];
  const own = new CheckedOwnReads(app.sonofs, bad => {
    app.coreLogger.error('[egg-sonofs] the record of %s (bundle %d offset %d) failed its checksum: not served; read from a member, asking the agent to write it again',
      bad.fileId, bad.bundle, bad.offset);
    app.messenger.sendToAgent(REPLICATION_ACTIONS.ownBad, bad);
  });
  app.messenger.on(REPLICATION_ACTIONS.ownRepaired, (at: BadOwnRecord) => own.repaired(at));
  return holder[OWN] = own;
}

/** Why an own file cannot be served when no other node answered for it. */
export function badOwnRecord(fileId: string): CorruptRecordError {
  return new CorruptRecordError(`the record of ${fileId} failed its checksum and no member of its group served a good copy`);
}

/** The members' copies of a bad own record: when none answers, the error says the record is bad, not that a node is away. */
function fromMembers(remote: FileSource, fileId: string): FileSource {
  const orBad = <T>(p: Promise<T>) => p.catch(err => {
    throw err instanceof NodeUnavailableError ? badOwnRecord(fileId) : err;
  });
  return {
    stat: id => orBad(remote.stat(id)),
    getFile: id => orBad(remote.getFile(id)),
    createReadStream: (id, range) => orBad(remote.createReadStream(id, range)),
  };
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
