import type { Application } from 'egg';
import { BadRequestError, CopyRecord } from '../../lib';
import { COPY_NOW_PATH, askMembersToCopy, parseBundle, parseInstance } from '../../lib/replication';
import { clusterEnabled } from './cluster-agent';
import { groupPeerOf, wholeNumber } from './node-query';
import { clusterMapOf } from './cluster-map';
import { answeringErrorsWith, sendError } from './http-errors';
import { requireNodeSignature } from './node-routes';
import { CopyNowReply, CopyNowRequest, REPLICATION_ACTIONS } from './replication-agent';

const route = answeringErrorsWith(sendError);
const MiB = 1 << 20;
/** the longest a member is asked to wait for a copy, whatever the caller says */
const MAX_COPY_WAIT_MS = 3600_000;

/**
 * How long a writer waits for a member to copy a record: the configured time,
 * plus the time the record's bytes take at the slowest rate counted on.
 */
export function copyTimeoutMs(cluster: { copyTimeout: number; copyRate: number }, bytes: number): number {
  return Math.min(MAX_COPY_WAIT_MS, cluster.copyTimeout + Math.ceil((bytes / (cluster.copyRate * MiB)) * 1000));
}

/**
 * Cluster mode, in the writing worker: what the store calls once a new record
 * is durable here. 'all' asks every live member of the group to copy it now
 * and answers how many nodes hold it; 'one' answers 1 at once (members copy
 * it in the background). Undefined in embedded mode.
 */
export function copyRecordHook(app: Application): CopyRecord | undefined {
  const cfg = app.config.sonofs;
  if (!clusterEnabled(cfg.cluster)) return undefined;
  if (cfg.cluster.replication === 'one') return async () => 1;
  return async rec => {
    const report = await clusterMapOf(app)!.current();
    if (!report) return 1; // the agent has no map yet: the background copy makes the others
    const members = report.snapshot.nodes.filter(n => n.state === 'up' && n.group === cfg.group && n.server !== cfg.server && n.url);
    if (!members.length) return 1;
    const acks = await askMembersToCopy(members, rec, {
      self: { group: cfg.group, server: cfg.server, instance: report.self.instance },
      secret: cfg.cluster.secret,
      timeoutMs: copyTimeoutMs(cfg.cluster, rec.end - rec.start),
    });
    for (const a of acks) {
      if (a.copied) continue;
      app.coreLogger.warn('[egg-sonofs] replication: %d.%d did not confirm its copy of bundle %d [%d, %d) (%s); acknowledged with fewer copies, it is copied in the background',
        a.member.group, a.member.server, rec.bundle, rec.start, rec.end, a.why);
    }
    return 1 + acks.filter(a => a.copied).length;
  };
}

/** Worker → agent: has the agent's copy of that peer got the range (it copies it now)? */
class CopyRequests {
  private next = 1;
  private readonly pending = new Map<number, (copied: boolean) => void>();

  constructor(private readonly app: Application) {
    app.messenger.on(REPLICATION_ACTIONS.copied, ({ id, copied }: CopyNowReply) => {
      this.pending.get(id)?.(copied);
      this.pending.delete(id);
    });
  }

  ask(req: Omit<CopyNowRequest, 'id' | 'pid'>): Promise<boolean> {
    const id = this.next++;
    return new Promise(resolve => {
      // the agent answers by then; a restarted agent never does
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(false);
      }, req.timeoutMs + 1000);
      this.pending.set(id, copied => {
        clearTimeout(timer);
        resolve(copied);
      });
      this.app.messenger.sendToAgent(REPLICATION_ACTIONS.copyNow, { ...req, id, pid: process.pid } satisfies CopyNowRequest);
    });
  }
}

/**
 * The member's side: POST `/_sonofs/node/copy-now?group=&server=&instance=&bundle=&start=&end=&timeout=`
 * (signed) answers `{"copied": true}` once this node's copy of that group
 * peer holds [start, end) of its bundle, synced, or `{"copied": false}` when
 * it could not within `timeout` ms. Takes numbers only, never a path.
 */
export function registerCopyNowRoute(app: Application): void {
  const cfg = app.config.sonofs;
  const requests = new CopyRequests(app);
  app.router.post(COPY_NOW_PATH, route(async ctx => {
    requireNodeSignature(ctx);
    const q = ctx.query;
    const { group, server } = groupPeerOf(q, cfg, 'copies the bundles');
    const start = wholeNumber(q.start, 'start');
    const end = wholeNumber(q.end, 'end');
    if (end <= start) throw new BadRequestError('INVALID_RANGE', 'end must be after start');
    const timeoutMs = Math.min(wholeNumber(q.timeout, 'timeout'), MAX_COPY_WAIT_MS);
    const copied = await requests.ask({ peer: { group, server, instance: parseInstance(q.instance) }, bundle: parseBundle(q.bundle), start, end, timeoutMs });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { copied };
  }));
}
