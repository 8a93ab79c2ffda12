import fs from 'node:fs';
import { bundlePath, listBundles } from './bundle-files';
import type { Catalog, ReplayRecord } from './catalog';
import { encodeFileId } from './file-id';
import { mimeFromCode, DEFAULT_MIME } from './mime';
import { HEADER_SIZE, RecordKind, crc32c, decodeHeader, decodeMeta, RecordHeader, slotLenOfDamagedHeader } from './record';

export interface ScanOptions {
  group: number;
  server: number;
  extentSize: number;
  /** Check every blob's data checksum (reads all data). */
  verifyData: boolean;
}

export interface ScanResult {
  records: ReplayRecord[];
  /** records whose checksum failed: torn by a crash or corrupted */
  corrupt: number;
}

const CHUNK = 1 << 20;

/**
 * Walks the records of [start, end) of a bundle. Records are laid end to end
 * inside an extent; a header of zeros ends the used part of that extent, and
 * the walk resumes at the next extent boundary, where the next lease began
 * (a damaged header: see afterDamagedHeader).
 */
export function scanRange(root: string, bundle: number, start: number, end: number, opts: ScanOptions): ScanResult {
  const out: ScanResult = { records: [], corrupt: 0 };
  const fd = openForScan(root, bundle);
  if (fd === undefined) return out;
  try {
    const size = fs.fstatSync(fd).size;
    const stop = Math.min(end, size);
    const head = Buffer.alloc(HEADER_SIZE);
    let pos = start;
    while (pos + HEADER_SIZE <= stop) {
      const h = fs.readSync(fd, head, 0, HEADER_SIZE, pos) === HEADER_SIZE ? decodeHeader(head) : undefined;
      if (!h || h.slotLen < HEADER_SIZE || h.slotLen % 8 !== 0 || h.dataLen + h.metaLen > h.slotLen - HEADER_SIZE) {
        pos = h ? nextExtent(pos, opts.extentSize) : afterDamagedHeader(fd, head, pos, stop, opts.extentSize, out);
        continue;
      }
      if (h.kind === RecordKind.Blob || h.kind === RecordKind.Link || h.kind === RecordKind.Unlink) {
        const rec = readRecord(fd, bundle, pos, h, opts);
        if (rec) out.records.push(rec);
        else out.corrupt++;
      }
      pos += h.slotLen;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function nextExtent(pos: number, extentSize: number): number {
  return (Math.floor(pos / extentSize) + 1) * extentSize;
}

/**
 * Where the walk goes on after a header at `pos` that does not validate.
 * Zeros (no magic): the extent's used part ended; on at the next extent
 * boundary, where the next lease began. A damaged header that still starts
 * like one was torn by a power cut during its final write (some sectors
 * written, others not) or corrupted. Its slot length sits in one 8-byte word,
 * which a sector cannot split, and is a length the slot really had: in a
 * shared extent every header at a slot's offset carries the same one
 * (slot-writer.ts), and both lengths of a dedicated slot end past its data.
 * So the walk steps over the record when that leads to a valid header or an
 * extent boundary (records acknowledged after a torn one stay found), and
 * otherwise resumes at the first extent boundary past the record, never at
 * one inside a large record's data.
 */
function afterDamagedHeader(fd: number, head: Buffer, pos: number, stop: number, extentSize: number, out: ScanResult): number {
  const slotLen = slotLenOfDamagedHeader(head);
  if (slotLen === undefined || slotLen < HEADER_SIZE || slotLen % 8 !== 0) return nextExtent(pos, extentSize);
  out.corrupt++;
  const end = pos + slotLen;
  if (end > stop) return stop;
  if (end % extentSize === 0) return end;
  if (end + HEADER_SIZE <= stop) {
    const next = Buffer.alloc(HEADER_SIZE);
    if (fs.readSync(fd, next, 0, HEADER_SIZE, end) === HEADER_SIZE && decodeHeader(next)) return end;
  }
  return Math.min(stop, nextExtent(end, extentSize));
}

/** Every record of every bundle under root. */
export function scanAll(root: string, opts: ScanOptions): ScanResult {
  const all: ScanResult = { records: [], corrupt: 0 };
  for (const bundle of listBundles(root)) {
    const r = scanRange(root, bundle, 0, Number.MAX_SAFE_INTEGER, opts);
    // not push(...records): a bundle of small files holds more records than a call takes arguments
    for (const rec of r.records) all.records.push(rec);
    all.corrupt += r.corrupt;
  }
  return all;
}

/** A bundle's fd for reading, or undefined when it does not exist. */
function openForScan(root: string, bundle: number): number | undefined {
  try {
    return fs.openSync(bundlePath(root, bundle), 'r');
  } catch {
    return undefined;
  }
}

function readRecord(fd: number, bundle: number, pos: number, h: RecordHeader, opts: ScanOptions): ReplayRecord | undefined {
  const metaBuf = Buffer.alloc(h.metaLen);
  if (fs.readSync(fd, metaBuf, 0, h.metaLen, pos + HEADER_SIZE + h.dataLen) !== h.metaLen) return undefined;
  if (crc32c(metaBuf) !== h.metaCrc) return undefined;
  let meta;
  try {
    meta = decodeMeta(metaBuf);
  } catch {
    return undefined;
  }
  if (typeof meta.u !== 'string') return undefined;
  const sha1 = h.sha1.toString('hex');
  const base = { seq: h.seq, time: h.time, sha1, user: meta.u, name: meta.n, at: meta.at };
  if (h.kind === RecordKind.Link) return { kind: 'link', ...base };
  if (h.kind === RecordKind.Unlink) return { kind: 'unlink', ...base };
  if (opts.verifyData && dataCrc(fd, pos + HEADER_SIZE, h.dataLen) !== h.dataCrc) return undefined;
  return {
    kind: 'blob',
    ...base,
    size: h.dataLen,
    mime: meta.m ?? mimeFromCode(h.mimeCode) ?? DEFAULT_MIME,
    fileId: encodeFileId({
      group: opts.group, server: opts.server, bundle, offset: pos, size: h.dataLen, mimeCode: h.mimeCode, cookie: h.cookie,
    }),
  };
}

function dataCrc(fd: number, start: number, len: number): number {
  const buf = Buffer.alloc(Math.min(CHUNK, Math.max(len, 1)));
  let crc = 0;
  for (let done = 0; done < len;) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, len - done), start + done);
    if (n <= 0) return -1;
    crc = crc32c(buf.subarray(0, n), crc);
    done += n;
  }
  return crc;
}

/** True when a valid record header sits at this position (used space). */
export function recordAt(root: string, bundle: number, offset: number): boolean {
  const fd = openForScan(root, bundle);
  if (fd === undefined) return false;
  try {
    const head = Buffer.alloc(HEADER_SIZE);
    return fs.readSync(fd, head, 0, HEADER_SIZE, offset) === HEADER_SIZE && decodeHeader(head) !== undefined;
  } finally {
    fs.closeSync(fd);
  }
}

export type RecoveryMode = 'rebuild' | 'replay' | 'reconcile';

/**
 * Start-up recovery, run by the leader before workers write:
 * - an empty catalog (new, or lost) is rebuilt from every bundle;
 * - a catalog whose allocator position is behind the disk (restored from an
 *   old copy) gets every newer record replayed from every bundle;
 * - otherwise only extents still leased are replayed (records a crashed
 *   worker wrote but did not commit).
 */
export async function recoverCatalog(catalog: Catalog, root: string, opts: ScanOptions): Promise<{ mode: RecoveryMode; applied: number; corrupt: number }> {
  if (await catalog.isEmpty()) {
    const r = scanAll(root, opts);
    return { mode: 'rebuild', applied: await catalog.replay(r.records), corrupt: r.corrupt };
  }
  const state = await catalog.getAllocState();
  const behind = listBundles(root).some(b => !state || b >= state.nextBundle)
    || (!!state && state.bundle >= 0 && recordAt(root, state.bundle, state.next));
  if (behind) {
    const r = scanAll(root, opts);
    return { mode: 'replay', applied: await catalog.replay(r.records), corrupt: r.corrupt };
  }
  const records: ReplayRecord[] = [];
  let corrupt = 0;
  for (const lease of await catalog.openLeases()) {
    const r = scanRange(root, lease.bundle, lease.offset, lease.offset + lease.length, opts);
    for (const rec of r.records) records.push(rec);
    corrupt += r.corrupt;
  }
  return { mode: 'reconcile', applied: await catalog.replay(records), corrupt };
}
