import path from 'node:path';
import { ExtentAllocator } from './bundle/allocator';
import { decodeFileId } from './bundle/file-id';
import { fixLayout, readLayout } from './bundle/layout';
import { FORMAT_VERSION } from './catalog/lmdb-encoding';
import { needsRebuild, probeCatalog } from './catalog/lmdb-format';
import { clearUnfinishedRebuild, rebuildDir, swapInRebuilt } from './catalog/lmdb-swap';
import { LmdbCatalog } from './catalog/lmdb-catalog';
import { ClusterNodeCatalog, recoverInCluster } from './catalog/node-catalog';
import type { Catalog } from './catalog/types';
import { LocalExtentSource } from './bundle/local-source';
import { RecoveryOptions, recoverCatalog } from './catalog/rebuild';
import { SonofsStore, StoreOptions } from './store';
import { isAlive } from './pid';
import { lockRoot, prepareRoot } from './bundle/root-lock';
import { bootIdFrom, dropCatalogTornByOsCrash } from './catalog/unsynced-marker';

export interface NodeOptions extends StoreOptions {
  bundleSize: number;
  /** this system's boot id (default: read from the OS; tests pretend a reboot with another; null: synced catalog) */
  bootId?: string | null;
  /** records per catalog transaction when recovery replays every bundle (default 10,000; tests take fewer) */
  replayBatch?: number;
}

/** The catalog of a node lives beside its bundles. */
export function catalogDir(root: string): string {
  return path.join(root, 'meta');
}

/**
 * A cluster node's allocation ledger (an LMDB catalog holding no content): not
 * in meta/, so that a node taken back to embedded mode finds no catalog there
 * that lacks what it stored in the cluster, and rebuilds one from its bundles.
 */
export function ledgerDir(root: string): string {
  return path.join(root, 'ledger');
}

/**
 * The leader's half of a node: catalog, recovery and allocation (what the
 * agent runs). It holds the root's lock until `lock.release()`.
 * `shared`: cluster mode, the catalog the nodes share (backends.ts picks it);
 * the node's LMDB catalog then holds only its allocation ledger.
 */
export async function openLeader(opts: NodeOptions, shared?: Catalog) {
  prepareRoot(opts.root);
  const lock = await lockRoot(opts.root);
  try {
    return { ...await lead(opts, shared), lock };
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function lead(opts: NodeOptions, shared: Catalog | undefined) {
  const dir = shared ? ledgerDir(opts.root) : catalogDir(opts.root);
  const bootId = bootIdFrom(opts.bootId);
  // An OS crash may have torn the unsynced catalog: rebuild it from the bundles.
  const tornByOsCrash = dropCatalogTornByOsCrash(dir, bootId);
  // A kill during a rebuild left the catalog it was to replace, whole, and its own partial one beside it.
  const cutShort = clearUnfinishedRebuild(dir);
  const probe = await probeCatalog(dir);
  // Before a catalog of an older format is replaced: the identity its ids carry is pinned first.
  const { adopted } = fixLayout(opts.root, opts, storedIdentity(opts.root, probe.anyFileId));
  const outdatedFormat = (probe.format !== 0 && probe.format !== FORMAT_VERSION) || probe.writtenByFormat1 === true;
  const unfinishedRebuild = cutShort || probe.unfinishedRebuild !== undefined;
  // A rebuild reads every blob's data only where a header may be on disk without its data: after an OS
  // crash, or when nothing tells (a lost catalog, an empty one). A killed process cannot leave that:
  // a final header is written once its record's data and meta are in the page cache, which outlives the
  // process; what a kill leaves half-written has a Pending header, in an extent still leased (which
  // reconcile scans) or gone with a replaced catalog (which a rebuild walks whole).
  const verifyData = tornByOsCrash || (probe.unfinishedRebuild?.verifyData ?? !outdatedFormat);
  const scan = { group: opts.group, server: opts.server, extentSize: opts.extentSize, verifyData, batch: opts.replayBatch };
  const rebuilt = needsRebuild(probe) ? await rebuildBeside(dir, opts.root, scan, !shared) : undefined;
  const local = new LmdbCatalog(dir, { bootId: bootId ?? null });
  const catalog = shared ? new ClusterNodeCatalog(shared, local) : local;
  const recovery = rebuilt
    ?? (catalog instanceof ClusterNodeCatalog ? await recoverInCluster(catalog, opts.root, scan) : await recoverCatalog(catalog, opts.root, scan));
  // Extents of workers that are gone were just replayed; stop rescanning them.
  for (const lease of await catalog.openLeases()) {
    if (!isAlive(lease.owner)) await catalog.closeLease(lease.bundle, lease.offset);
  }
  const allocator = new ExtentAllocator(catalog, opts);
  await allocator.init();
  // replay and reconcile check the data of every record they read
  const verifiedData = recovery.mode !== 'rebuild' || verifyData;
  return { catalog, allocator, recovery: { ...recovery, verifiedData, tornByOsCrash, outdatedFormat, unfinishedRebuild, adoptedLayout: adopted } };
}

/**
 * Builds the catalog from the bundles beside the one in `dir` (none, older,
 * or partial), then swaps it in (catalog/lmdb-swap.ts). Its commits are not synced:
 * the swap syncs it whole first. Without `replay` (cluster mode: the catalog is
 * only the node's ledger) the new one is left empty, for recoverInCluster.
 */
async function rebuildBeside(dir: string, root: string, scan: RecoveryOptions, replay: boolean) {
  const next = new LmdbCatalog(rebuildDir(dir), { unmarked: true });
  let recovery;
  try {
    if (replay) recovery = await recoverCatalog(next, root, scan);
  } finally {
    await next.close();
  }
  swapInRebuilt(dir);
  return recovery;
}

/** The node identity the ids of a store from before layout.json pinned it carry (none for a new or pinned store). */
function storedIdentity(root: string, anyFileId: string | undefined): { group: number; server: number } | undefined {
  const layout = readLayout(root);
  if (!layout || (layout.group !== undefined && layout.server !== undefined)) return undefined;
  return anyFileId === undefined ? undefined : decodeFileId(anyFileId);
}

/** A whole node in one process, without Egg: leader and store together. */
export async function openStandalone(opts: NodeOptions) {
  const leader = await openLeader(opts);
  const store = new SonofsStore(opts, leader.catalog, new LocalExtentSource(leader.allocator));
  return {
    ...leader,
    store,
    async close() {
      await store.close();
      await leader.catalog.close({ last: true });
      leader.lock.release();
    },
  };
}
