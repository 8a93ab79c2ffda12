import type {
  AllocState, AllocationLedger, BlobInfo, Catalog, ExtentLease, RecordWrite, ReplayOptions, ReplayRecord, UploadCommit,
  UploadOutcome, UserFile,
} from './types';
import { listBundles } from '../bundle/files';
import type { ScanOptions } from '../bundle/scanner';
import { ledgerBehind, reconcileLeases } from './rebuild';

/** The ledger's store: LmdbCatalog, of which only the ledger and the allocator position of replay are used. */
export type LocalLedger = AllocationLedger & Pick<Catalog, 'replay' | 'close'>;

/**
 * A cluster node's catalog, as its leader holds it: content and links in the
 * catalog the nodes share (Redis), the allocation ledger on the node's own disk
 * (no other node cuts space from its bundles). Recovery finds here the leases
 * to rescan, and replays their records into the shared catalog.
 */
export class ClusterNodeCatalog implements Catalog, AllocationLedger {
  constructor(readonly shared: Catalog, readonly ledger: LocalLedger) {}

  getBlob(sha1: string): Promise<BlobInfo | undefined> {
    return this.shared.getBlob(sha1);
  }

  getUserFile(user: string, sha1: string): Promise<UserFile | undefined> {
    return this.shared.getUserFile(user, sha1);
  }

  listUserFiles(user: string, limit: number): Promise<UserFile[]> {
    return this.shared.listUserFiles(user, limit);
  }

  commitUpload(c: UploadCommit, writeBlob: RecordWrite, writeLink: RecordWrite): Promise<UploadOutcome> {
    return this.shared.commitUpload(c, writeBlob, writeLink);
  }

  link(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    return this.shared.link(user, sha1, name, write);
  }

  rename(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    return this.shared.rename(user, sha1, name, write);
  }

  unlink(user: string, sha1: string, write: RecordWrite): Promise<boolean> {
    return this.shared.unlink(user, sha1, write);
  }

  /** Records go to the shared catalog; the allocator position after them to the ledger, once they are in. */
  async replay(records: ReplayRecord[], opts: ReplayOptions = {}): Promise<number> {
    const applied = await this.shared.replay(records, { rebuild: opts.rebuild });
    if (opts.allocState) await this.ledger.replay([], { allocState: opts.allocState });
    return applied;
  }

  isEmpty(): Promise<boolean> {
    return this.shared.isEmpty();
  }

  anyBlob(): Promise<BlobInfo | undefined> {
    return this.shared.anyBlob();
  }

  durable(): Promise<void> {
    return this.shared.durable();
  }

  getAllocState(): Promise<AllocState | undefined> {
    return this.ledger.getAllocState();
  }

  recordLease(state: AllocState, lease: ExtentLease): Promise<void> {
    return this.ledger.recordLease(state, lease);
  }

  closeLease(bundle: number, offset: number): Promise<void> {
    return this.ledger.closeLease(bundle, offset);
  }

  openLeases(): Promise<ExtentLease[]> {
    return this.ledger.openLeases();
  }

  async close(opts?: { last?: boolean }): Promise<void> {
    await this.shared.close(opts);
    await this.ledger.close(opts);
  }
}

/**
 * Start-up recovery of a cluster node, run by its leader before workers write.
 * It never rebuilds the shared catalog (one node's bundles cannot rebuild it;
 * reindex.ts does, when an operator asks):
 * - a ledger lost or older than the disk: its leases are gone with it (what
 *   they held was never acknowledged, or is in the shared catalog), and space
 *   is cut past every bundle from now on;
 * - otherwise the extents still leased are replayed into the shared catalog,
 *   each record only where it is newer than what the key holds.
 */
export async function recoverInCluster(catalog: ClusterNodeCatalog, root: string, opts: ScanOptions) {
  const unfinished = await (catalog.shared as { unfinishedRebuild?(): Promise<unknown> }).unfinishedRebuild?.();
  if (unfinished) {
    throw new Error(`[egg-sonofs] a reindex of the bundles under ${root} into the shared catalog was cut short: run \`sonofs reindex --root ${root}\` again before starting this node`);
  }
  const bundles = listBundles(root);
  // bundles here and nothing in the shared catalog: Redis lost its data (or this node ran embedded)
  const sharedCatalogEmpty = bundles.length > 0 && await catalog.shared.isEmpty();
  const saved = await catalog.getAllocState();
  if (!ledgerBehind(root, saved)) return { mode: 'reconcile' as const, ...await reconcileLeases(catalog, root, opts), sharedCatalogEmpty };
  for (const lease of await catalog.openLeases()) await catalog.closeLease(lease.bundle, lease.offset);
  const nextBundle = Math.max(bundles.length ? bundles[bundles.length - 1] + 1 : 0, saved?.nextBundle ?? 0);
  await catalog.ledger.replay([], { allocState: { bundle: -1, next: 0, nextBundle } });
  return { mode: 'ledger' as const, applied: 0, corrupt: 0, sharedCatalogEmpty };
}
