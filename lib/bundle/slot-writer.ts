import fs from 'node:fs';
import { BundleFiles, punchHole, writevFully } from './files';
import type { ExtentLease } from '../catalog/types';
import { HEADER_SIZE, align, paddingHeader, pendingHeader } from './record';

/** Where a worker gets extents from: the agent over the messenger, or in-process. */
export interface ExtentSource {
  allocate(bytes: number): Promise<ExtentLease>;
  /** Called once every record in the extent is committed or aborted. */
  release(lease: ExtentLease): void;
}

/**
 * A leased extent cut into slots end to end. In a shared extent a slot's
 * length is fixed when it is cut: it never shrinks, and its space is never
 * cut again (not after an abort either). So every header ever written at a
 * slot's offset (Pending, final, Padding) carries the same slot length, and
 * whichever of them a crash leaves on disk, or a torn mix of them, a scan
 * steps to the next slot's header, never into file bytes that could mimic a
 * record (a file holding a forged tombstone stays a file). The price is the
 * slack of a slot reserved larger than its record, and the space of aborted
 * uploads and duplicates, until compaction (a large run of it gives its disk
 * blocks back at once: see abort() and releaseAfter()).
 */
class ActiveExtent {
  next: number;
  inflight = 0;
  retired = false;
  readonly end: number;

  /** dedicated: one slot for one large record; nothing is ever cut after it */
  constructor(readonly lease: ExtentLease, readonly dedicated = false) {
    this.next = lease.offset;
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
  /** Data writes not yet returned: an aborted slot is settled (and a large one punched) only once they land. */
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly writer: SlotWriter,
    private readonly ext: ActiveExtent,
    readonly fd: number,
    readonly offset: number,
    private len: number,
  ) {}

  /** Bytes reserved; shrinkTo lowers it only in a dedicated extent. */
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
   * A blob record turned out `used` bytes long. Returns the slot length to put
   * in its final header: the slot's own in a shared extent (see ActiveExtent).
   * A dedicated slot, which nothing follows in its lease, shrinks to the record
   * (so a bundle of its own is cut down to it): its bytes past a blob were
   * never written. A link record keeps its slot's length (the upload's bytes
   * lie under it). Call right before writing the final header.
   */
  shrinkTo(used: number): number {
    if (this.ext.dedicated && align(used) <= this.len) {
      this.len = align(used);
      this.ext.next = this.offset + this.len;
    }
    return this.len;
  }

  /**
   * Gives the slot up: a Padding header over its whole length, and a large
   * slot's data blocks back to the filesystem (its space is not cut again).
   * Waits for data writes still in flight (a client that went away mid-write)
   * so the slot is settled only once nothing more lands in it.
   */
  async abort(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await Promise.allSettled([ ...this.writing ]);
    try {
      // Padding, not the Pending header, in case a final header was written
      // before the commit failed: the record must not come back on a scan.
      this.writeSync(paddingHeader(this.length));
      await this.punchFrom(HEADER_SIZE);
    } finally {
      this.writer.settle(this.ext);
    }
  }

  /** The slot's bytes from `used` on are dead (a duplicate's data under its link record): a large run of them goes back to the filesystem. */
  releaseAfter(used: number): Promise<void> {
    return this.punchFrom(align(used));
  }

  /** Gives the blocks of [from, length) of the slot back, for a run of PUNCH_MIN or more (best effort). */
  private async punchFrom(from: number): Promise<void> {
    await punchHole(this.writer.files.path(this.bundle), this.offset + from, this.length - from);
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
    if (len > this.extentSize) {
      const slot = this.cut(new ActiveExtent(await this.source.allocate(len), true), len, body);
      // Its Pending header reaches the disk before any of its data: a power cut can then leave no
      // header of zeros there, from which a scan would resume at an extent boundary inside the data.
      try {
        await this.files.sync(slot.bundle);
      } catch (err) {
        await slot.abort();
        throw err;
      }
      return slot;
    }
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

  private cut(ext: ActiveExtent, len: number, body: Buffer[]): Slot {
    const fd = this.files.acquire(ext.lease.bundle);
    const slot = new Slot(this, ext, fd, ext.next, len);
    // Taken first: a write that fails part way (ENOSPC) leaves user bytes in the slot, which is
    // then never cut again. Its Pending header (the first bytes written) or the Padding below
    // lets a scan step over them.
    ext.next += len;
    if (ext.dedicated) ext.retired = true;
    try {
      slot.writevSync([ pendingHeader(len), ...body ], 0);
    } catch (err) {
      try {
        slot.writeSync(paddingHeader(len));
      } catch {
        // the disk refuses even that: the Pending header, if it landed, still gives the length
      }
      // Nothing more is cut from this extent: if neither header landed, zeros at this offset end
      // its used part for a scan, and a record cut after them would be lost to a rebuild.
      this.files.release(ext.lease.bundle);
      this.retire(ext);
      throw err;
    }
    ext.inflight++;
    return slot;
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
