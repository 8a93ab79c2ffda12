import fs from 'node:fs';
import { BundleFiles, writevFully } from './bundle-files';
import type { ExtentLease } from './catalog';
import { HEADER_SIZE, align, paddingHeader, pendingHeader } from './record';

/** Where a worker gets extents from: the agent over the messenger, or in-process. */
export interface ExtentSource {
  allocate(bytes: number): Promise<ExtentLease>;
  /** Called once every record in the extent is committed or aborted. */
  release(lease: ExtentLease): void;
}

class ActiveExtent {
  next: number;
  /**
   * End of the furthest slot ever cut. Bytes in [next, highWater) may hold
   * data of an aborted or shrunk slot (user bytes that could mimic a record),
   * so the header chain on disk must always reach past them: see cover().
   */
  highWater: number;
  inflight = 0;
  retired = false;
  readonly end: number;

  constructor(readonly lease: ExtentLease, readonly dedicated = false) {
    this.next = lease.offset;
    this.highWater = lease.offset;
    this.end = lease.offset + lease.length;
  }
}

/**
 * Space reserved for one record. Its header is written at once, synchronously,
 * as a Pending record with the slot's length: headers in an extent are thus on
 * disk in allocation order, so a scan can always step over a slot whose write
 * is still in progress, and a later record can never be hidden behind it.
 */
export class Slot {
  private settled = false;
  /** Data writes not yet returned: the space must not be reused before they land. */
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly writer: SlotWriter,
    private readonly ext: ActiveExtent,
    readonly fd: number,
    readonly offset: number,
    private len: number,
  ) {}

  /** Bytes reserved; shrinkTo may lower it. */
  get length(): number {
    return this.len;
  }

  get bundle(): number {
    return this.ext.lease.bundle;
  }

  /** Writes at `pos` bytes into the slot (async, for data). */
  write(buf: Buffer, pos: number): Promise<void> {
    return this.writev([ buf ], pos);
  }

  /** Writes `bufs` back to back at `pos` with one vectored write (no copy). */
  writev(bufs: Buffer[], pos: number): Promise<void> {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    this.check(pos, total);
    return this.track(writevFully(this.fd, bufs, this.offset + pos));
  }

  private track(p: Promise<void>): Promise<void> {
    this.writing.add(p);
    const forget = () => this.writing.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Writes `bufs` back to back at `pos`, synchronously (a small record already in memory). */
  writevSync(bufs: Buffer[], pos: number): void {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    this.check(pos, total);
    const done = fs.writevSync(this.fd, bufs, this.offset + pos);
    if (done < total) writeFully(this.fd, Buffer.concat(bufs).subarray(done), this.offset + pos + done);
  }

  /** Writes at `pos` synchronously (for headers and small records). */
  writeSync(buf: Buffer, pos = 0): void {
    this.check(pos, buf.length);
    writeFully(this.fd, buf, this.offset + pos);
  }

  /**
   * The record turned out `used` bytes long: when no later slot was cut from
   * the extent, give the rest back. Returns the slot length to put in the
   * final header. Call right before writing that header, in the same tick.
   */
  shrinkTo(used: number): number {
    const end = this.offset + align(used);
    if (this.ext.next === this.offset + this.length && end <= this.ext.next && this.writer.cover(this.ext, end, this.fd)) {
      this.ext.next = end;
      this.len = align(used);
    }
    return this.len;
  }

  /**
   * Gives the space back: rewinds when this is the extent's last slot, else
   * marks it Padding. Waits for data writes still in flight (a client that
   * went away mid-write) so they cannot land in space given to the next slot.
   */
  async abort(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await Promise.allSettled([ ...this.writing ]);
    try {
      // Padding, not the Pending header, in case a final header was written
      // before the commit failed: the record must not come back on a scan.
      // It covers the slot's bytes until a later cut overwrites it.
      this.writeSync(paddingHeader(this.length));
      if (this.ext.next === this.offset + this.length) this.ext.next = this.offset;
    } finally {
      this.writer.settle(this.ext);
    }
  }

  /** Waits until everything written to this bundle so far is durable. */
  durable(): Promise<void> {
    return this.writer.files.sync(this.bundle);
  }

  /** The record is committed; the extent may be released. */
  finish(): void {
    if (this.settled) return;
    this.settled = true;
    try {
      this.trimBundle();
    } finally {
      this.writer.settle(this.ext);
    }
  }

  /**
   * A file that had a bundle of its own (larger than a bundle, or of unknown
   * length) ends the bundle: cut the sparse file down to the record, so its
   * apparent size is the file's, not maxFileSize.
   */
  private trimBundle(): void {
    const { lease } = this.ext;
    const end = this.offset + this.len;
    if (!this.ext.dedicated || lease.offset !== 0 || this.ext.next !== end) return;
    if (fs.fstatSync(this.fd).size === lease.length) fs.ftruncateSync(this.fd, end);
  }

  private check(pos: number, len: number): void {
    if (pos < 0 || pos + len > this.length) throw new RangeError(`write [${pos}, ${pos + len}) outside slot of ${this.length}`);
  }
}

/**
 * A worker's allocator: one active extent leased from the leader, cut into
 * slots in order; a record bigger than an extent gets a lease of its own.
 */
export class SlotWriter {
  private active: ActiveExtent | undefined;
  private refill: Promise<ActiveExtent> | undefined;

  constructor(readonly files: BundleFiles, private readonly source: ExtentSource, private readonly extentSize: number) {}

  /**
   * `body`: bytes to write right after the Pending header, in the same vectored
   * write (a small file already in memory: one syscall instead of two).
   */
  async reserve(bytes: number, body: Buffer[] = []): Promise<Slot> {
    const len = align(bytes);
    if (len > this.extentSize) return this.cut(new ActiveExtent(await this.source.allocate(len), true), len, body);
    for (;;) {
      const ext = this.active;
      if (ext && !ext.retired && ext.next + len <= ext.end) return this.cut(ext, len, body);
      if (ext && !ext.retired) this.retire(ext);
      await this.newActive();
    }
  }

  /** Called by a slot when it is settled. */
  settle(ext: ActiveExtent): void {
    ext.inflight--;
    this.files.release(ext.lease.bundle);
    this.maybeRelease(ext);
  }

  /** Stops cutting from the active extent (shutdown); it is released when idle. */
  retireActive(): void {
    if (this.active) this.retire(this.active);
  }

  /**
   * Makes the bytes in [from, highWater) unparseable by a scan: a Padding
   * header at `from` covers them. False when the gap is too small for a header
   * (the caller keeps the longer slot instead). Writes synchronously, inside
   * the region the current header chain already covers, so a crash at any
   * point leaves a chain that steps over every stale byte.
   */
  cover(ext: ActiveExtent, from: number, fd: number): boolean {
    const gap = ext.highWater - from;
    if (gap <= 0) return true;
    if (gap < HEADER_SIZE) return false;
    writeFully(fd, paddingHeader(gap), from);
    return true;
  }

  private cut(ext: ActiveExtent, bytes: number, body: Buffer[]): Slot {
    const fd = this.files.acquire(ext.lease.bundle);
    try {
      let len = bytes;
      // Absorb a stale tail too short to carry a Padding header.
      if (!this.cover(ext, ext.next + len, fd)) len = ext.highWater - ext.next;
      const slot = new Slot(this, ext, fd, ext.next, len);
      // Raised first: a write that fails part way (ENOSPC) leaves user bytes in the
      // slot, and the next cut from here must pad over them (see cover()).
      ext.highWater = Math.max(ext.highWater, ext.next + len);
      slot.writevSync([ pendingHeader(len), ...body ], 0);
      ext.next += len;
      ext.inflight++;
      if (ext.dedicated) ext.retired = true;
      return slot;
    } catch (err) {
      this.files.release(ext.lease.bundle);
      throw err;
    }
  }

  private retire(ext: ActiveExtent): void {
    ext.retired = true;
    if (this.active === ext) this.active = undefined;
    this.maybeRelease(ext);
  }

  private maybeRelease(ext: ActiveExtent): void {
    if (ext.retired && ext.inflight === 0) this.source.release(ext.lease);
  }

  /** One lease request at a time; concurrent reservations wait for it. */
  private async newActive(): Promise<void> {
    if (!this.refill) {
      this.refill = (async () => {
        try {
          const ext = new ActiveExtent(await this.source.allocate(this.extentSize));
          this.active = ext;
          return ext;
        } finally {
          this.refill = undefined;
        }
      })();
    }
    await this.refill;
  }
}

function writeFully(fd: number, buf: Buffer, at: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, at + done);
}
