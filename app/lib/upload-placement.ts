import type { Application } from 'egg';
import type { Readable } from 'node:stream';
import type { UploadResult } from '../../lib';
import { InsufficientStorageError, UnavailableError } from '../../lib';
import { choosePlacement, forwardUpload, placementConfig, PlacementConfig, PlacementTarget } from '../../lib/cluster';
import { clusterMapOf } from './cluster-map';
import { copyTimeoutMs } from './replication-ack';

const PLACEMENT = Symbol.for('egg-sonofs#upload-placement');

export interface UploadSpec {
  user: string;
  filename?: string;
  mime?: string;
  size?: number;
  /** the most bytes the stream can hold (the request's length) */
  sizeBound?: number;
}

export interface UploadPlacement {
  /** where an upload of at most `size` bytes goes: undefined for this node, else the other group's members */
  targets(size: number): Promise<PlacementTarget[] | undefined>;
  /** streams the upload to those members; answers their stored file as a local upload would */
  forward(targets: PlacementTarget[], stream: Readable, spec: UploadSpec): Promise<UploadResult>;
}

/**
 * Placement of single-request uploads in cluster mode (undefined in embedded
 * mode): the worker's cluster map says which group takes a file, and a file
 * for another group is streamed to one of its members (node-routes.ts
 * receives it there). Without a map (the registry unread, Redis away, this
 * node not in it) the upload stays here, where the store's own space checks
 * still hold.
 */
export function uploadPlacement(app: Application): UploadPlacement | undefined {
  const a = app as unknown as { [PLACEMENT]?: UploadPlacement | null };
  if (a[PLACEMENT] === undefined) a[PLACEMENT] = makePlacement(app) ?? null;
  return a[PLACEMENT] ?? undefined;
}

function makePlacement(app: Application): UploadPlacement | undefined {
  const map = clusterMapOf(app);
  if (!map) return undefined;
  const cfg = app.config.sonofs.cluster;
  const policy: PlacementConfig = placementConfig(cfg.placement);
  return {
    async targets(size) {
      const report = await map.current();
      if (!report || report.snapshot.status !== 'ok') return undefined;
      const nodes = report.snapshot.nodes.filter(n => n.url);
      // not in the map yet (just started, or its entry lapsed): its own space checks hold, as without a map
      if (!nodes.some(n => n.instance === report.self.instance)) return undefined;
      const p = choosePlacement(nodes, { group: report.self.group, instance: report.self.instance }, size, policy);
      if (p.local === true) return undefined;
      if (p.local === false) return p.targets;
      if (p.noNode) throw new UnavailableError('NO_NODE', 'no node of the cluster is up to store this upload; retry later');
      throw new InsufficientStorageError(`no group has room for this upload of up to ${size} bytes (${p.reason})`);
    },
    async forward(targets, stream, spec) {
      try {
        const { result } = await forwardUpload<UploadResult>(targets, stream, {
          secret: cfg.secret, user: spec.user, filename: spec.filename, mime: spec.mime, size: spec.size, sizeBound: spec.sizeBound,
          connectTimeoutMs: cfg.readTimeout,
          // the target may wait for its members' copies before it answers (replication 'all')
          answerTimeoutMs: Math.max(cfg.readTimeout, 60_000, copyTimeoutMs(cfg, spec.size ?? spec.sizeBound ?? 0) + 10_000),
        });
        return result;
      } catch (err) {
        const details = (err as { details?: string[] }).details;
        app.logger.warn('[egg-sonofs] forwarded upload failed: %s%s', (err as Error).message, details?.length ? ` (${details.join('; ')})` : '');
        throw err;
      }
    },
  };
}
