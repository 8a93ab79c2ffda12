import fs from 'node:fs';
import { bundlePath, listBundles } from './files';
import type { ReplayRecord } from '../catalog/types';
import { encodeFileId } from './file-id';
import { mimeFromCode, DEFAULT_MIME } from '../mime';
import {
  HEADER_SIZE, RecordKind, RecordMeta, crc32c, decodeHeader, decodeMeta, isReplayableMeta, RecordHeader, slotLenOfDamagedHeader,
} from './record';

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

/** Bytes a walk over a bundle reads at a time. */
export const SCAN_WINDOW = 1 << 20;

/**
 * Reads a bundle through a window: a walk over small records makes one read
 * per window instead of two or three per record.
 */
export class BundleReader {
  private readonly buf: Buffer;
  private start = 0;
  private len = 0;

  constructor(readonly fd: number, window: number) {
    this.buf = Buffer.allocUnsafe(window);
  }

  /** `len` bytes at `pos`, valid until the next read; undefined past the end of the file. */
  read(pos: number, len: number): Buffer | undefined {
    if (pos >= this.start && pos + len <= this.start + this.len) return this.buf.subarray(pos - this.start, pos - this.start + len);
    if (len > this.buf.length) {
      const big = Buffer.allocUnsafe(len);
      return fs.readSync(this.fd, big, 0, len, pos) === len ? big : undefined;
    }
    // emptied first: a read that throws must not leave the old bytes standing for the new place
    this.len = 0;
    this.start = pos;
    this.len = fs.readSync(this.fd, this.buf, 0, this.buf.length, pos);
    return len <= this.len ? this.buf.subarray(0, len) : undefined;
  }
}

/** Kinds of record that replay applies (the others only take space). */
export function isReplayed(kind: RecordKind): boolean {
  return kind === RecordKind.Blob || kind === RecordKind.Link || kind === RecordKind.Unlink;
}

/**
 * Walks the records of [start, end) of a bundle, calling `visit` with each
 * valid header in order; answers how many damaged headers it met. Records are
 * laid end to end inside an extent; a header of zeros ends the used part of
 * that extent, and the walk resumes at the next extent boundary, where the
 * next lease began (a damaged header: see afterDamagedHeader).
 */
export function walkBundle(reader: BundleReader, start: number, end: number, extentSize: number, visit: (pos: number, h: RecordHeader) => void): number {
  const stop = Math.min(end, fs.fstatSync(reader.fd).size);
  let corrupt = 0;
  let pos = start;
  while (pos + HEADER_SIZE <= stop) {
    const head = reader.read(pos, HEADER_SIZE);
    const h = head && decodeHeader(head);
    if (!h) {
      const slotLen = head && slotLenOfDamagedHeader(head);
      if (slotLen === undefined || slotLen < HEADER_SIZE || slotLen % 8 !== 0) {
        pos = nextExtent(pos, extentSize);
      } else {
        corrupt++;
        pos = afterDamagedHeader(reader, pos + slotLen, stop, extentSize);
      }
    } else if (h.slotLen < HEADER_SIZE || h.slotLen % 8 !== 0 || h.dataLen + h.metaLen > h.slotLen - HEADER_SIZE) {
      pos = nextExtent(pos, extentSize);
    } else {
      visit(pos, h);
      pos += h.slotLen;
    }
  }
  return corrupt;
}

/** Every valid record of [start, end) of a bundle, decoded. */
export function scanRange(root: string, bundle: number, start: number, end: number, opts: ScanOptions): ScanResult {
  const out: ScanResult = { records: [], corrupt: 0 };
  const fd = openForScan(root, bundle);
  if (fd === undefined) return out;
  try {
    const reader = new BundleReader(fd, SCAN_WINDOW);
    const damaged = walkBundle(reader, start, end, opts.extentSize, (pos, h) => {
      if (!isReplayed(h.kind)) return;
      const rec = readRecord(reader, bundle, pos, h, opts);
      if (rec) out.records.push(rec);
      else out.corrupt++;
    });
    out.corrupt += damaged;
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function nextExtent(pos: number, extentSize: number): number {
  return (Math.floor(pos / extentSize) + 1) * extentSize;
}

/**
 * Where the walk goes on after a damaged header whose record would end at
 * `end`. Such a header, which still starts like one, was torn by a power cut
 * during its final write (some sectors written, others not) or corrupted. Its
 * slot length sits in one 8-byte word, which a sector cannot split, and is a
 * length the slot really had: in a shared extent every header at a slot's
 * offset carries the same one (slot-writer.ts), and both lengths of a
 * dedicated slot end past its data. So the walk steps over the record when
 * that leads to a valid header or an extent boundary (records acknowledged
 * after a torn one stay found), and otherwise resumes at the first extent
 * boundary past the record, never at one inside a large record's data.
 */
function afterDamagedHeader(reader: BundleReader, end: number, stop: number, extentSize: number): number {
  if (end > stop) return stop;
  if (end % extentSize === 0) return end;
  if (end + HEADER_SIZE <= stop) {
    const next = reader.read(end, HEADER_SIZE);
    if (next && decodeHeader(next)) return end;
  }
  return Math.min(stop, nextExtent(end, extentSize));
}

/** Every record of every bundle under root, in memory: for tests and small stores (a rebuild goes through catalog/rebuild.ts). */
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
export function openForScan(root: string, bundle: number): number | undefined {
  try {
    return fs.openSync(bundlePath(root, bundle), 'r');
  } catch {
    return undefined;
  }
}

/** The meta of the record at `pos` when it validates (checksum, and what the catalog can hold), else undefined. */
export function recordMeta(reader: BundleReader, pos: number, h: RecordHeader): RecordMeta | undefined {
  const metaBuf = reader.read(pos + HEADER_SIZE + h.dataLen, h.metaLen);
  if (!metaBuf || crc32c(metaBuf) !== h.metaCrc) return undefined;
  let meta;
  try {
    meta = decodeMeta(metaBuf);
  } catch {
    return undefined;
  }
  return isReplayableMeta(meta) ? meta : undefined;
}

/** Whether the data of the blob record at `pos` matches its checksum (reads all of it). */
export function dataIntact(reader: BundleReader, pos: number, h: RecordHeader, window = SCAN_WINDOW): boolean {
  let crc = 0;
  for (let done = 0; done < h.dataLen;) {
    const n = Math.min(window, h.dataLen - done);
    const buf = reader.read(pos + HEADER_SIZE + done, n);
    if (!buf) return false;
    crc = crc32c(buf, crc);
    done += n;
  }
  return crc === h.dataCrc;
}

/** The record at `pos` as replay takes it; undefined when it does not validate. */
export function readRecord(reader: BundleReader, bundle: number, pos: number, h: RecordHeader, opts: ScanOptions): ReplayRecord | undefined {
  const meta = recordMeta(reader, pos, h);
  if (!meta) return undefined;
  const sha1 = h.sha1.toString('hex');
  const base = { seq: h.seq, time: h.time, sha1, user: meta.u!, name: meta.n, at: meta.at };
  if (h.kind === RecordKind.Link) return { kind: 'link', ...base };
  if (h.kind === RecordKind.Unlink) return { kind: 'unlink', ...base };
  if (opts.verifyData && !dataIntact(reader, pos, h)) return undefined;
  let fileId: string;
  try {
    fileId = encodeFileId({ group: opts.group, server: opts.server, bundle, offset: pos, size: h.dataLen, mimeCode: h.mimeCode, cookie: h.cookie });
  } catch {
    return undefined; // a size or place no file id holds
  }
  return { kind: 'blob', ...base, size: h.dataLen, mime: meta.m ?? mimeFromCode(h.mimeCode) ?? DEFAULT_MIME, fileId };
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
