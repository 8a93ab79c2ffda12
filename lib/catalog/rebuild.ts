import fs from 'node:fs';
import { bundlePath, listBundles } from '../bundle/files';
import type { AllocState, AllocationLedger, Catalog, ReplayOptions, ReplayRecord } from './types';

/** Recovery replays a node's own bundles into its catalog and allocation state together (embedded mode). */
type NodeCatalog = Catalog & AllocationLedger;
import { HEADER_SIZE, RecordHeader, RecordKind, crc32c, decodeHeader, paddingHeader } from '../bundle/record';
import {
  BundleReader, SCAN_WINDOW, ScanOptions, dataIntact, isReplayed, openForScan, readRecord, recordAt, recordMeta, scanRange,
  walkBundle,
} from '../bundle/scanner';

export type RecoveryMode = 'rebuild' | 'replay' | 'reconcile';

export interface RecoveryOptions extends ScanOptions {
  /** whether a rebuild checks the data of every blob (replay and reconcile always do) */
  verifyData: boolean;
  /** records per transaction when every bundle is replayed */
  batch?: number;
}

const BATCH = 10_000;

/**
 * Start-up recovery, run by the leader before workers write:
 * - an empty catalog (new, lost, or dropped by the leader) is rebuilt from
 *   every bundle;
 * - a catalog whose allocator position is behind the disk (restored from an
 *   old copy) gets every newer record replayed from every bundle; data is
 *   checked, as nothing tells what happened to the node after the copy;
 * - otherwise only extents still leased are replayed (records a crashed
 *   worker wrote but did not commit).
 * The first two end by recording an allocator position past every bundle. A
 * replay cut short resumes at the next start: the catalog holds the last seq
 * it applied, and the position that makes it behind is only replaced by the
 * last batch.
 */
export async function recoverCatalog(catalog: NodeCatalog, root: string, opts: RecoveryOptions): Promise<{ mode: RecoveryMode; applied: number; corrupt: number }> {
  if (await catalog.isEmpty()) return { mode: 'rebuild', ...await replayAll(catalog, root, opts, true) };
  if (ledgerBehind(root, await catalog.getAllocState())) return { mode: 'replay', ...await replayAll(catalog, root, { ...opts, verifyData: true }, false) };
  return { mode: 'reconcile', ...await reconcileLeases(catalog, root, opts) };
}

/** Whether the ledger's allocator position is behind the bundles on disk (lost, or restored from an old copy). */
export function ledgerBehind(root: string, state: AllocState | undefined): boolean {
  return listBundles(root).some(b => !state || b >= state.nextBundle)
    || (!!state && state.bundle >= 0 && recordAt(root, state.bundle, state.next));
}

/** Replays the records of the extents still leased: what workers that are gone wrote, committed or not. */
export async function reconcileLeases(catalog: NodeCatalog, root: string, opts: ScanOptions): Promise<{ applied: number; corrupt: number }> {
  const records: ReplayRecord[] = [];
  let corrupt = 0;
  for (const lease of await catalog.openLeases()) {
    const r = scanRange(root, lease.bundle, lease.offset, lease.offset + lease.length, { ...opts, verifyData: true });
    for (const rec of r.records) records.push(rec);
    corrupt += r.corrupt;
  }
  return { applied: await catalog.replay(records), corrupt };
}

/**
 * Replays every record of every bundle in seq order, in batches, without
 * holding them: a first pass notes where each valid record is (seq, bundle,
 * offset: 20 bytes), the positions are ordered by seq, and a second pass reads
 * each record's header and meta again to apply it. A rebuild marks the catalog
 * from before the first pass until its last batch (ReplayOptions.rebuild).
 */
async function replayAll(catalog: NodeCatalog, root: string, opts: RecoveryOptions, rebuild: boolean): Promise<{ applied: number; corrupt: number }> {
  const bundles = listBundles(root);
  const saved = await catalog.getAllocState();
  // What the allocator takes after a replay (bundle/allocator.ts), recorded with the last batch only: until
  // then the catalog still looks behind the disk, and a replay cut short is resumed.
  const allocState = { bundle: -1, next: 0, nextBundle: Math.max(bundles.length ? bundles[bundles.length - 1] + 1 : 0, saved?.nextBundle ?? 0) };
  return replayBundles(catalog, root, bundles, opts, last => ({
    ...(rebuild ? { rebuild: { verifyData: opts.verifyData, last } } : {}),
    ...(last ? { allocState } : {}),
  }));
}

/**
 * Every record of `bundles` into `catalog`, in seq order, in batches, each
 * batch with the options `batchOptions` gives it (`last` for the last one). A
 * rebuild (batchOptions(false).rebuild) is marked before the first pass.
 */
export async function replayBundles(
  catalog: Catalog, root: string, bundles: number[], opts: RecoveryOptions, batchOptions: (last: boolean) => ReplayOptions,
): Promise<{ applied: number; corrupt: number }> {
  if (batchOptions(false).rebuild) await catalog.replay([], batchOptions(false));
  const found = locateRecords(root, bundles, opts);
  const order = orderBySeq(found);
  const size = Math.max(1, opts.batch ?? BATCH);
  const readers = new Readers(root, opts.extentSize);
  const again = { ...opts, verifyData: false };
  let applied = 0;
  let corrupt = found.corrupt;
  let k = 0;
  try {
    do {
      const batch: ReplayRecord[] = [];
      // Records of one seq go in one transaction: replay skips those not newer than the catalog at its start.
      for (; k < order.length && !(batch.length >= size && found.seqAt(order[k]) !== found.seqAt(order[k - 1])); k++) {
        const rec = readers.record(found.bundleAt(order[k]), found.offsetAt(order[k]), again);
        if (rec) batch.push(rec);
        else corrupt++;
      }
      applied += await catalog.replay(batch, batchOptions(k === order.length));
    } while (k < order.length);
  } finally {
    readers.close();
  }
  return { applied, corrupt };
}

/** The first pass: every bundle walked in order, each record checked (its data too when `verifyData`). */
function locateRecords(root: string, bundles: number[], opts: ScanOptions): Located {
  const found = new Located();
  for (const bundle of bundles) {
    const fd = openForScan(root, bundle);
    if (fd === undefined) continue;
    const torn: { pos: number; slotLen: number }[] = [];
    try {
      const reader = new BundleReader(fd, SCAN_WINDOW);
      const damaged = walkBundle(reader, 0, Number.MAX_SAFE_INTEGER, opts.extentSize, (pos, h) => {
        if (!isReplayed(h.kind)) return;
        const data = !recordMeta(reader, pos, h) ? 'no meta'
          : opts.verifyData && h.kind === RecordKind.Blob && !readsIntact(reader, pos, h) ? recheckData(fd, pos, h)
            : 'intact';
        if (data === 'intact') {
          found.add(h.seq, bundle, pos);
        } else {
          found.corrupt++;
          if (data === 'damaged') torn.push({ pos, slotLen: h.slotLen });
        }
      });
      found.corrupt += damaged;
    } finally {
      fs.closeSync(fd);
    }
    if (torn.length) retireTornBlobs(root, bundle, torn);
  }
  return found;
}

/** dataIntact, with an I/O error as a failed check. */
function readsIntact(reader: BundleReader, pos: number, h: RecordHeader): boolean {
  try {
    return dataIntact(reader, pos, h);
  } catch {
    return false;
  }
}

/**
 * A second read of the data of a blob that failed its check, through no
 * window, each read resumed where a short one ended: 'damaged' only when all
 * of it was read and its checksum fails again. A read cut short, the end of
 * the file inside the data (a file being truncated or extended) or an I/O
 * error say nothing of the bytes on disk: 'unreadable'.
 */
function recheckData(fd: number, pos: number, h: RecordHeader): 'intact' | 'damaged' | 'unreadable' {
  const buf = Buffer.allocUnsafe(Math.min(SCAN_WINDOW, h.dataLen));
  let crc = 0;
  try {
    for (let done = 0; done < h.dataLen;) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, h.dataLen - done), pos + HEADER_SIZE + done);
      if (n === 0) return 'unreadable';
      crc = crc32c(buf.subarray(0, n), crc);
      done += n;
    }
  } catch {
    return 'unreadable';
  }
  return crc === h.dataCrc ? 'intact' : 'damaged';
}

/**
 * Turns blob records whose data fails its checksum, read whole twice, into
 * Padding. Such a record was torn by an OS crash (its header reached the
 * disk, its data did not; it was never acknowledged) or its data decayed. It
 * is left out either way, and a later rebuild that reads no data (after the
 * clean upgrade of a catalog's format) must leave it out too, not let it stand
 * for content uploaded again: a duplicate of that content would be linked to
 * the broken record and its own bytes dropped. A blob whose data could not be
 * read whole is only left out of this catalog, its record kept, so a rebuild
 * after the disk recovers finds it again.
 * The slot keeps its length, so walks step over it as before.
 */
function retireTornBlobs(root: string, bundle: number, torn: { pos: number; slotLen: number }[]): void {
  const fd = fs.openSync(bundlePath(root, bundle), 'r+');
  try {
    for (const t of torn) fs.writeSync(fd, paddingHeader(t.slotLen), 0, HEADER_SIZE, t.pos);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;

/** Where the valid records are: typed arrays in chunks, so growing never copies and nothing is a JS object per record. */
class Located {
  count = 0;
  corrupt = 0;
  maxSeq = 0;
  private readonly seqs: Float64Array[] = [];
  private readonly bundles: Uint32Array[] = [];
  private readonly offsets: Float64Array[] = [];

  add(seq: number, bundle: number, offset: number): void {
    const c = this.count >>> CHUNK_BITS;
    const j = this.count & (CHUNK - 1);
    if (j === 0) {
      this.seqs.push(new Float64Array(CHUNK));
      this.bundles.push(new Uint32Array(CHUNK));
      this.offsets.push(new Float64Array(CHUNK));
    }
    this.seqs[c][j] = seq;
    this.bundles[c][j] = bundle;
    this.offsets[c][j] = offset;
    this.count++;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  seqAt(i: number): number {
    return this.seqs[i >>> CHUNK_BITS][i & (CHUNK - 1)];
  }

  bundleAt(i: number): number {
    return this.bundles[i >>> CHUNK_BITS][i & (CHUNK - 1)];
  }

  offsetAt(i: number): number {
    return this.offsets[i >>> CHUNK_BITS][i & (CHUNK - 1)];
  }
}

const RADIX = 1 << 16;

/**
 * The records' numbers in seq order; equal seqs keep the order of the walk
 * (bundle, then offset: after a rebuild new records go to new bundles). An LSD
 * radix sort, 16 bits of the seq a pass: no comparator calls, and no memory
 * beyond two arrays of 4 bytes per record.
 */
function orderBySeq(found: Located): Uint32Array {
  const n = found.count;
  let order = new Uint32Array(n);
  let spare = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const starts = new Uint32Array(RADIX + 1);
  for (let unit = 1; unit <= found.maxSeq; unit *= RADIX) {
    starts.fill(0);
    for (let i = 0; i < n; i++) starts[digit(found.seqAt(order[i]), unit) + 1]++;
    for (let d = 1; d <= RADIX; d++) starts[d] += starts[d - 1];
    for (let i = 0; i < n; i++) {
      const r = order[i];
      spare[starts[digit(found.seqAt(r), unit)]++] = r;
    }
    [ order, spare ] = [ spare, order ];
  }
  return order;
}

const digit = (seq: number, unit: number): number => Math.floor(seq / unit) % RADIX;

/** Small reads: a record's header and meta, with what follows it. */
const READ_WINDOW = 64 << 10;
/** Extents open at once in the second pass: records close in seq are in extents written at the same time. */
const MAX_READERS = 64;

/** The second pass's readers, one per extent, the least recently used closed first. */
class Readers {
  private readonly open = new Map<string, BundleReader>();

  constructor(private readonly root: string, private readonly extentSize: number) {}

  /** The record at `offset` as replay takes it; undefined when it does not validate (any more). */
  record(bundle: number, offset: number, opts: ScanOptions): ReplayRecord | undefined {
    const reader = this.reader(bundle, offset);
    const head = reader?.read(offset, HEADER_SIZE);
    const h = head && decodeHeader(head);
    return h && isReplayed(h.kind) ? readRecord(reader!, bundle, offset, h, opts) : undefined;
  }

  close(): void {
    for (const r of this.open.values()) fs.closeSync(r.fd);
    this.open.clear();
  }

  private reader(bundle: number, offset: number): BundleReader | undefined {
    const key = `${bundle}/${Math.floor(offset / this.extentSize)}`;
    let r = this.open.get(key);
    if (r) {
      // Map order doubles as LRU order.
      this.open.delete(key);
      this.open.set(key, r);
      return r;
    }
    const fd = openForScan(this.root, bundle);
    if (fd === undefined) return undefined;
    r = new BundleReader(fd, READ_WINDOW);
    this.open.set(key, r);
    if (this.open.size > MAX_READERS) {
      const [ oldest, old ] = this.open.entries().next().value!;
      this.open.delete(oldest);
      fs.closeSync(old.fd);
    }
    return r;
  }
}
