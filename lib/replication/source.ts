import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { bundlePath, listBundles } from '../bundle/files';
import { HEADER_SIZE, RecordHeader, RecordKind, decodeHeader, slotLenOfDamagedHeader } from '../bundle/record';
import type { AllocState, AllocationLedger, ExtentLease } from '../catalog/types';
import { NotFoundError } from '../errors';
import { FrameType, Hole, StreamEnd, WalkRange, frameHead } from './protocol';

/**
 * Where the node's allocator stood, read before any byte of a bundle: a place
 * it had not leased yet, or leased to a worker still writing, may change; any
 * other place is final (a closed extent is never cut again). Read first, a
 * snapshot can only be older than the bytes, which makes the walk wait longer,
 * never skip a record.
 */
export interface LedgerSnapshot {
  state: AllocState | undefined;
  leases: ExtentLease[];
}

export async function snapshotLedger(ledger: Pick<AllocationLedger, 'getAllocState' | 'openLeases'>): Promise<LedgerSnapshot> {
  return { state: await ledger.getAllocState(), leases: await ledger.openLeases() };
}

/** Bytes of `bundle` the allocator had handed out: nothing past them is written yet. */
export function allocatedEnd(bundle: number, fileSize: number, snap: LedgerSnapshot): number {
  const s = snap.state;
  if (!s || bundle >= s.nextBundle) return 0;
  return bundle === s.bundle ? Math.min(s.next, fileSize) : fileSize;
}

/** This node's bundles with the bytes allocated in each (its size for a copy to reach). */
export function listOwnBundles(root: string, snap: LedgerSnapshot): Array<[ number, number ]> {
  const out: Array<[ number, number ]> = [];
  for (const bundle of listBundles(root)) {
    let size: number;
    try {
      size = fs.statSync(bundlePath(root, bundle)).size;
    } catch {
      continue;
    }
    const end = allocatedEnd(bundle, size, snap);
    if (end > 0) out.push([ bundle, end ]);
  }
  return out;
}

export interface StreamOptions {
  extentSize: number;
  /** record bytes one answer carries at most (a record is never cut): the rest is asked for again */
  budget: number;
}

/** Bytes read from the bundle at a time. */
const WINDOW = 1 << 20;

/** Positioned reads through a window, like scanner.ts's BundleReader but without blocking the worker. */
class WindowReader {
  private readonly buf = Buffer.allocUnsafe(WINDOW);
  private start = 0;
  private len = 0;

  constructor(private readonly fh: FileHandle) {}

  /** `len` bytes at `pos` (valid until the next read), or undefined past the end of the file. */
  async read(pos: number, len: number): Promise<Buffer | undefined> {
    if (pos >= this.start && pos + len <= this.start + this.len) return this.buf.subarray(pos - this.start, pos - this.start + len);
    if (len > WINDOW) return this.fresh(pos, len);
    this.len = 0;
    this.start = pos;
    this.len = (await this.fh.read(this.buf, 0, WINDOW, pos)).bytesRead;
    return len <= this.len ? this.buf.subarray(0, len) : undefined;
  }

  /** `len` bytes at `pos` in a buffer of their own. */
  async fresh(pos: number, len: number): Promise<Buffer | undefined> {
    const b = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const { bytesRead } = await this.fh.read(b, done, len - done, pos + done);
      if (bytesRead === 0) return undefined;
      done += bytesRead;
    }
    return b;
  }
}

/**
 * The frames for `ranges` of one of this node's bundles (protocol.ts):
 * committed records and the marks of slots in progress, then an END frame
 * with the holes (slots still Pending, unwritten rest of an extent a worker
 * holds) and where the walk of the open range stopped. Records are read from
 * disk as the stream is consumed, never the bundle at once.
 */
export async function* streamRecords(root: string, bundle: number, ranges: WalkRange[], snap: LedgerSnapshot, opts: StreamOptions): AsyncGenerator<Buffer> {
  let fh: FileHandle;
  try {
    fh = await fs.promises.open(bundlePath(root, bundle), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('NO_SUCH_BUNDLE', `this node has no bundle ${bundle}`);
    throw err;
  }
  try {
    const fileSize = (await fh.stat()).size;
    const allocated = allocatedEnd(bundle, fileSize, snap);
    const reader = new WindowReader(fh);
    const leases = snap.leases.filter(l => l.bundle === bundle);
    const openLeaseAt = (pos: number) => leases.find(l => pos >= l.offset && pos < l.offset + l.length);
    const nextExtent = (pos: number) => (Math.floor(pos / opts.extentSize) + 1) * opts.extentSize;
    const out: StreamEnd = { end: null, holes: [], skipped: 0 };
    let sent = 0;
    for (const range of ranges) {
      const stop = Math.min(range.end ?? allocated, fileSize);
      let pos = range.start;
      let cut = false;
      while (pos + HEADER_SIZE <= stop) {
        if (sent >= opts.budget) {
          cut = true;
          break;
        }
        const head = await reader.read(pos, HEADER_SIZE);
        const h = head && decodeHeader(head);
        const lease = openLeaseAt(pos);
        if (!h || !plausible(h)) {
          const damaged = !h && head ? slotLenOfDamagedHeader(head) : undefined;
          if (lease) {
            // a worker may still write here: ask again for the rest of its lease
            const end = Math.min(lease.offset + lease.length, stop);
            out.holes.push([ pos, end ]);
            pos = end;
          } else if (damaged !== undefined && damaged >= HEADER_SIZE && damaged % 8 === 0) {
            out.skipped++;
            pos = await afterDamagedHeader(reader, pos + damaged, stop, opts.extentSize);
          } else {
            pos = nextExtent(pos); // zeros: the used part of a closed extent ends here
          }
          continue;
        }
        if (h.kind === RecordKind.Pending || h.kind === RecordKind.Padding) {
          yield Buffer.concat([ frameHead(FrameType.Mark, pos), head ]);
          if (h.kind === RecordKind.Pending) out.holes.push([ pos, pos + h.slotLen ]);
        } else {
          const record = HEADER_SIZE + h.dataLen + h.metaLen;
          sent += record;
          // the header as decoded: should it change meanwhile, the bytes after it fail their checksums at the reader
          const header = Buffer.from(head);
          if (record <= WINDOW) {
            const body = await reader.read(pos + HEADER_SIZE, record - HEADER_SIZE);
            if (!body) throw new Error(`bundle ${bundle} ends inside the record at ${pos}`);
            yield Buffer.concat([ frameHead(FrameType.Record, pos), header, body ]);
          } else {
            yield Buffer.concat([ frameHead(FrameType.Record, pos), header ]);
            yield* recordBytes(reader, pos + HEADER_SIZE, record - HEADER_SIZE);
          }
        }
        pos += h.slotLen;
      }
      // not cut: what is left before `stop` is too short to hold a header
      if (range.end === null) out.end = cut ? pos : Math.max(range.start, stop);
      else if (cut) out.holes.push([ pos, range.end ]);
    }
    const json = Buffer.from(JSON.stringify(out), 'utf8');
    yield Buffer.concat([ frameHead(FrameType.End, json.length), json ]);
  } finally {
    await fh.close();
  }
}

/** A header whose lengths fit its slot (as scanner.ts's walk requires). */
function plausible(h: RecordHeader): boolean {
  return h.slotLen >= HEADER_SIZE && h.slotLen % 8 === 0 && h.dataLen + h.metaLen <= h.slotLen - HEADER_SIZE;
}

/** `length` bytes of a record from `pos`, in pieces of at most a window, each a buffer of its own. */
async function* recordBytes(reader: WindowReader, pos: number, length: number): AsyncGenerator<Buffer> {
  for (let done = 0; done < length;) {
    const n = Math.min(WINDOW, length - done);
    const b = await reader.fresh(pos + done, n);
    if (!b) throw new Error(`the bundle ends inside the record before ${pos + done}`);
    yield b;
    done += n;
  }
}

/** Where a walk goes on after a damaged header of a closed extent: the rules of scanner.ts's afterDamagedHeader. */
async function afterDamagedHeader(reader: WindowReader, end: number, stop: number, extentSize: number): Promise<number> {
  if (end > stop) return stop;
  if (end % extentSize === 0) return end;
  if (end + HEADER_SIZE <= stop) {
    const next = await reader.read(end, HEADER_SIZE);
    if (next && decodeHeader(next)) return end;
  }
  return Math.min(stop, (Math.floor(end / extentSize) + 1) * extentSize);
}

/** A hole list is well formed for the asked ranges: inside them, ascending, non-empty. */
export function holesWithin(holes: Hole[], ranges: WalkRange[], end: number | null): boolean {
  let last = -1;
  for (const h of holes) {
    if (!Array.isArray(h) || h.length !== 2 || !Number.isSafeInteger(h[0]) || !Number.isSafeInteger(h[1])) return false;
    if (h[0] >= h[1] || h[0] < last || h[0] % 8 || h[1] % 8) return false;
    const inside = ranges.some(r => h[0] >= r.start && h[1] <= (r.end ?? end ?? -1));
    if (!inside) return false;
    last = h[1];
  }
  return true;
}
