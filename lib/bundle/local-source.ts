import type { ExtentAllocator } from './allocator';
import type { ExtentLease } from '../catalog/types';
import type { ExtentSource } from './slot-writer';

/** Extents straight from an in-process allocator (standalone use, unit tests, the agent itself). */
export class LocalExtentSource implements ExtentSource {
  constructor(private readonly allocator: ExtentAllocator, private readonly owner = process.pid) {}

  allocate(bytes: number): Promise<ExtentLease> {
    return this.allocator.allocate(bytes, this.owner);
  }

  release(lease: ExtentLease): void {
    this.allocator.release(lease.bundle, lease.offset).catch(() => undefined);
  }
}
