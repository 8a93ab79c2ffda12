import { createBundle, listBundles } from './files';
import { recordAt } from './scanner';
import type { AllocState, AllocationLedger, ExtentLease } from '../catalog/types';
import { MAX_BUNDLE } from './file-id';
import { SonofsError } from '../errors';

export interface AllocatorOptions {
  root: string;
  /** size of a shared bundle (sparse) */
  bundleSize: number;
  /** unit of allocation handed to a worker; a multiple of 8 dividing bundleSize */
  extentSize: number;
}

/**
 * The node's allocation leader (runs in the Egg agent). It cuts bundles into
 * extents and leases each to one worker, so two workers never write the same
 * bytes; workers sub-allocate records inside their extent without asking
 * again. A request larger than a bundle gets a bundle of its own.
 *
 * The position and every lease are persisted before the reply, so an agent
 * restart never hands out the same space twice.
 */
export class ExtentAllocator {
  private state!: AllocState;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly ledger: AllocationLedger, private readonly opts: AllocatorOptions) {
    if (opts.bundleSize % opts.extentSize !== 0 || opts.extentSize % 8 !== 0) {
      throw new Error('[egg-sonofs] bundleSize must be a multiple of extentSize, and extentSize a multiple of 8');
    }
  }

  async init(): Promise<void> {
    const onDisk = listBundles(this.opts.root);
    const firstFree = onDisk.length ? onDisk[onDisk.length - 1] + 1 : 0;
    const saved = await this.ledger.getAllocState();
    // Never trust a saved position behind what is on disk (lost or restored
    // metadata): start a fresh bundle rather than risk reusing written space.
    const trusted = saved && saved.nextBundle >= firstFree && !(saved.bundle >= 0 && recordAt(this.opts.root, saved.bundle, saved.next));
    this.state = trusted ? saved : { bundle: -1, next: 0, nextBundle: Math.max(firstFree, saved?.nextBundle ?? 0) };
  }

  /** Leases at least `bytes` of contiguous, extent-aligned space to `owner`. */
  allocate(bytes: number, owner: number): Promise<ExtentLease> {
    const run = this.queue.then(() => this.allocateNow(bytes, owner));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The worker is done with the extent: every record in it is indexed. */
  release(bundle: number, offset: number): Promise<void> {
    return this.ledger.closeLease(bundle, offset);
  }

  private async allocateNow(bytes: number, owner: number): Promise<ExtentLease> {
    const { extentSize, bundleSize, root } = this.opts;
    const need = Math.max(1, Math.ceil(bytes / extentSize)) * extentSize;
    const state = { ...this.state };
    let lease: ExtentLease;
    if (need > bundleSize) {
      const bundle = this.takeBundle(state);
      createBundle(root, bundle, need);
      lease = { bundle, offset: 0, length: need, owner };
    } else {
      if (state.bundle < 0 || state.next + need > bundleSize) {
        state.bundle = this.takeBundle(state);
        state.next = 0;
        createBundle(root, state.bundle, bundleSize);
      }
      lease = { bundle: state.bundle, offset: state.next, length: need, owner };
      state.next += need;
    }
    await this.ledger.recordLease(state, lease);
    this.state = state;
    return lease;
  }

  private takeBundle(state: AllocState): number {
    if (state.nextBundle > MAX_BUNDLE) {
      throw new SonofsError(507, 'STORAGE_FULL', 'this server has used all 16,777,216 bundle numbers; add a server');
    }
    return state.nextBundle++;
  }
}
