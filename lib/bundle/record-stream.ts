import fs from 'node:fs';
import { Readable } from 'node:stream';
import { CorruptRecordError } from '../errors';
import type { BundleFiles } from './files';
import { crc32c } from './record';

/** Positioned reads of [from, to) of a record's data, with an optional checksum check. */
export class RecordReadStream extends Readable {
  private pos: number;
  private crc = 0;
  private fd: number;
  /** a read is in flight: the fd must stay ours until it returns */
  private reading = false;
  private released = false;

  constructor(
    private readonly files: BundleFiles,
    private readonly bundle: number,
    private readonly base: number,
    from: number,
    private readonly to: number,
    private readonly expectCrc: number | undefined,
  ) {
    super({ highWaterMark: 256 << 10 });
    this.pos = from;
    this.fd = files.acquire(bundle);
  }

  override _read(size: number): void {
    const n = Math.min(Math.max(size, 64 << 10), 1 << 20, this.to - this.pos);
    if (n <= 0) {
      if (this.expectCrc !== undefined && this.crc !== this.expectCrc) {
        this.destroy(new CorruptRecordError('stored data failed its checksum'));
        return;
      }
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafe(n);
    this.reading = true;
    fs.read(this.fd, buf, 0, n, this.base + this.pos, (err, bytesRead) => {
      this.reading = false;
      if (this.destroyed) return this.release();
      if (err) return this.destroy(err);
      if (bytesRead === 0) return this.destroy(new CorruptRecordError('stored data is shorter than its record'));
      const chunk = buf.subarray(0, bytesRead);
      if (this.expectCrc !== undefined) this.crc = crc32c(chunk, this.crc);
      this.pos += bytesRead;
      this.push(chunk);
    });
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.reading) this.release();
    cb(err);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.files.release(this.bundle);
  }
}
