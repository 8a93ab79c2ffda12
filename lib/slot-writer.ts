import fs from 'node:fs';
import { promisify } from 'node:util';
import type { BundleFiles } from './bundle-files';
import type { ExtentLease } from './catalog';
import { align, paddingHeader, pendingHeader } from './record';

const write = promisify(fs.write);
const writev = promisify(fs.writev);

/** Where a worker gets extents from: the agent over the messenger, or in-process. */
export interface ExtentSource {
  allocate(bytes: number): Promise<ExtentLease>;
  /** Called once every record in the extent is committed or aborted. */
  release(lease: ExtentLease): void;
}

class ActiveExtent {
  next: number;
  inflight = 0;
  retired = false;
  readonly end: number;

  constructor(readonly lease: ExtentLease) {
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

  constructor(
    private readonly writer: SlotWriter,
    private readonly ext: ActiveExtent,
    readonly fd: number,
    readonly offset: number,
    readonly length: number,
  ) {}

  get bundle(): number {
    return this.ext.lease.bundle;
  }

  /** Writes at `pos` bytes into the slot (async, for data). */
  async write(buf: Buffer, pos: number): Promise<void> {
    this.check(pos, buf.length);
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await write(this.fd, buf, done, buf.length - done, this.offset + pos + done);
      done += bytesWritten;
    }
  }

  /** Writes `bufs` back to back at `pos` with one vectored write (no copy). */
  async writev(bufs: Buffer[], pos: number): Promise<void> {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    this.check(pos, total);
    const { bytesWritten } = await writev(this.fd, bufs, this.offset + pos);
    // A short write is rare (signals, full disk): finish the rest plainly.
    if (bytesWritten < total) await this.write(Buffer.concat(bufs).subarray(bytesWritten), pos + bytesWritten);
  }

  /** Writes at `pos` synchronously (for headers and small records). */
  writeSync(buf: Buffer, pos = 0): void {
    this.check(pos, buf.length);
    let done = 0;
    while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, this.offset + pos + done);
  }

  /**
   * The record turned out `used` bytes long: when no later slot was cut from
   * the extent, give the rest back. Returns the slot length to put in the
   * final header. Call right before writing that header, in the same tick.
   */
  shrinkTo(used: number): number {
    const end = this.offset + align(used);
    if (this.ext.next === this.offset + this.length && end <= this.ext.next) {
      this.ext.next = end;
      return align(used);
    }
    return this.length;
  }

  /** Gives the space back (rewinds if last, else marks it Padding). */
  abort(): void {
    if (this.settled) return;
    if (this.ext.next === this.offset + this.length) {
      this.ext.next = this.offset;
    } else {
      this.writeSync(paddingHeader(this.length));
    }
    this.finish();
  }

  /** Waits until everything written to this bundle so far is durable. */
  durable(): Promise<void> {
    return this.writer.files.sync(this.bundle);
  }

  /** The record is committed (or aborted); the extent may be released. */
  finish(): void {
    if (this.settled) return;
    this.settled = true;
    this.writer.settle(this.ext);
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

  async reserve(bytes: number): Promise<Slot> {
    const len = align(bytes);
    if (len > this.extentSize) return this.cut(new ActiveExtent(await this.source.allocate(len)), len, true);
    for (;;) {
      const ext = this.active;
      if (ext && !ext.retired && ext.next + len <= ext.end) return this.cut(ext, len, false);
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

  private cut(ext: ActiveExtent, len: number, dedicated: boolean): Slot {
    const fd = this.files.acquire(ext.lease.bundle);
    const slot = new Slot(this, ext, fd, ext.next, len);
    ext.next += len;
    ext.inflight++;
    if (dedicated) ext.retired = true;
    try {
      slot.writeSync(pendingHeader(len));
    } catch (err) {
      ext.next -= len;
      ext.inflight--;
      this.files.release(ext.lease.bundle);
      throw err;
    }
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
