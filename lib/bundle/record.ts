import { crc32c } from '@node-rs/crc32';
import { isUserId } from '../validate';

/**
 * A bundle is a sequence of self-describing records (Haystack "needles"):
 *
 *   header (96 B) | data (dataLen) | meta (metaLen, UTF-8 JSON) | slack → slotLen
 *
 * The header is fixed-size so a file id's offset leads straight to the data
 * (offset + 96): a small read is one pread of header + data. Name and mime go
 * after the data because the size is only known at the end of a stream.
 * Every part is checksummed (crc32c): the header covers itself, and holds the
 * data and meta checksums, so a record cut short by a crash never validates.
 *
 * Header layout (little-endian):
 *   0 magic u32 | 4 version u8 | 5 kind u8 | 6 mimeCode u8 | 7 flags u8
 *   8 slotLen u64 | 16 dataLen u64 | 24 seq u64 | 32 time u64 (ms)
 *   40 cookie u32 | 44 metaLen u32 | 48 sha1 [20] | 68 dataCrc u32 | 72 metaCrc u32
 *   76 reserved [16] | 92 headerCrc u32 (over bytes 0..91)
 */
export const HEADER_SIZE = 96;
export const RECORD_ALIGN = 8;
const MAGIC = 0x31464e53; // 'SNF1' read as little-endian u32
const VERSION = 1;

export enum RecordKind {
  /** Space reserved for a write in progress; skipped by scans, never served. */
  Pending = 0,
  /** File data plus the first uploader's link (user, name). */
  Blob = 1,
  /** A user's link to content by sha1: create, revive or rename. */
  Link = 2,
  /** Tombstone of a user's link; content with no links left is garbage. */
  Unlink = 3,
  /** Reclaimed space (an aborted upload); skipped by scans. */
  Padding = 4,
}

export interface RecordHeader {
  kind: RecordKind;
  mimeCode: number;
  slotLen: number;
  dataLen: number;
  /** Global order of metadata operations; replay applies records by seq. */
  seq: number;
  time: number;
  cookie: number;
  metaLen: number;
  sha1: Buffer;
  dataCrc: number;
  metaCrc: number;
}

/** What a record says about names and owners (stored as JSON after the data). */
export interface RecordMeta {
  /** user id */
  u?: string;
  /** the user's file name */
  n?: string;
  /** full mime type */
  m?: string;
  /** for Link records: when the user first uploaded this content (ms) */
  at?: number;
}

const ZERO_SHA1 = Buffer.alloc(20);

export function align(n: number): number {
  return Math.ceil(n / RECORD_ALIGN) * RECORD_ALIGN;
}

export function encodeHeader(h: RecordHeader): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(VERSION, 4);
  b.writeUInt8(h.kind, 5);
  b.writeUInt8(h.mimeCode, 6);
  b.writeUIntLE(h.slotLen, 8, 6);
  b.writeUIntLE(h.dataLen, 16, 6);
  b.writeUIntLE(h.seq, 24, 6);
  b.writeUIntLE(h.time, 32, 6);
  b.writeUInt32LE(h.cookie >>> 0, 40);
  b.writeUInt32LE(h.metaLen, 44);
  h.sha1.copy(b, 48, 0, 20);
  b.writeUInt32LE(h.dataCrc >>> 0, 68);
  b.writeUInt32LE(h.metaCrc >>> 0, 72);
  b.writeUInt32LE(crc32c(b.subarray(0, 92)), 92);
  return b;
}

/**
 * The slot length of a header that fails its checksum but still starts like
 * one (magic and version), as a header torn by a power cut does: the disk
 * wrote some of its 512-byte sectors and not others. Each 8-byte word of a
 * header (headers are 8-aligned) lies within one sector, so this word holds
 * the old header's slot length or the new one's, never a mix.
 */
export function slotLenOfDamagedHeader(b: Buffer): number | undefined {
  if (b.length < HEADER_SIZE || b.readUInt32LE(0) !== MAGIC || b.readUInt8(4) !== VERSION) return undefined;
  return b.readUIntLE(8, 6);
}

/** Decodes a header; undefined when the bytes are not a valid header (zeros, torn, foreign). */
export function decodeHeader(b: Buffer): RecordHeader | undefined {
  if (b.length < HEADER_SIZE) return undefined;
  if (b.readUInt32LE(0) !== MAGIC || b.readUInt8(4) !== VERSION) return undefined;
  if (b.readUInt32LE(92) !== crc32c(b.subarray(0, 92))) return undefined;
  const kind = b.readUInt8(5);
  if (kind > RecordKind.Padding) return undefined;
  return {
    kind,
    mimeCode: b.readUInt8(6),
    slotLen: b.readUIntLE(8, 6),
    dataLen: b.readUIntLE(16, 6),
    seq: b.readUIntLE(24, 6),
    time: b.readUIntLE(32, 6),
    cookie: b.readUInt32LE(40),
    metaLen: b.readUInt32LE(44),
    sha1: Buffer.from(b.subarray(48, 68)),
    dataCrc: b.readUInt32LE(68),
    metaCrc: b.readUInt32LE(72),
  };
}

/** Header for a slot that is reserved but not yet written: scans skip slotLen bytes. */
export function pendingHeader(slotLen: number): Buffer {
  return emptyHeader(RecordKind.Pending, slotLen);
}

/** Header for space given back: scans skip slotLen bytes. */
export function paddingHeader(slotLen: number): Buffer {
  return emptyHeader(RecordKind.Padding, slotLen);
}

function emptyHeader(kind: RecordKind, slotLen: number): Buffer {
  return encodeHeader({
    kind, mimeCode: 0, slotLen, dataLen: 0, seq: 0, time: 0, cookie: 0, metaLen: 0, sha1: ZERO_SHA1, dataCrc: 0, metaCrc: 0,
  });
}

export function encodeMeta(meta: RecordMeta): Buffer {
  return Buffer.from(JSON.stringify(meta), 'utf8');
}

export function decodeMeta(b: Buffer): RecordMeta {
  const v = JSON.parse(b.toString('utf8'));
  return v && typeof v === 'object' ? v as RecordMeta : {};
}

/** Times the catalog stores in 48 bits (ms: until the year 10889). */
const MAX_TIME = 2 ** 48 - 1;

/**
 * Whether the meta of a record replay applies says what the catalog can hold:
 * a user id the store accepts, text for name and mime, a link time in 48
 * bits. A record whose checksum holds but whose meta does not (written by
 * other code, or damaged before its checksum was taken) would otherwise stop
 * every start at its replay; it is counted as corrupt instead.
 */
export function isReplayableMeta(meta: RecordMeta): boolean {
  return isUserId(meta.u)
    && (meta.n === undefined || typeof meta.n === 'string')
    && (meta.m === undefined || typeof meta.m === 'string')
    && (meta.at === undefined || (Number.isSafeInteger(meta.at) && meta.at >= 0 && meta.at <= MAX_TIME));
}

/** Total bytes a record with this much data and meta needs, aligned. */
export function recordLength(dataLen: number, metaLen: number): number {
  return align(HEADER_SIZE + dataLen + metaLen);
}

/**
 * A complete data-less record (Link / Unlink) in one buffer, written with one
 * pwrite. `slotLen` is the space reserved for it (≥ its own length).
 */
export function encodeSmallRecord(h: Omit<RecordHeader, 'dataLen' | 'metaLen' | 'dataCrc' | 'metaCrc'>, meta: RecordMeta): Buffer {
  const m = encodeMeta(meta);
  const header = encodeHeader({ ...h, dataLen: 0, metaLen: m.length, dataCrc: 0, metaCrc: crc32c(m) });
  return Buffer.concat([ header, m ]);
}

export { crc32c };
