import { randomFillSync } from 'node:crypto';
import { BadRequestError } from '../errors';
import { isKnownMimeCode } from '../mime';

/**
 * A file id says where the bytes are, like a sonofs file name, so a read needs
 * no lookup: group, server, bundle (dir/subDir/file), record offset, size and
 * mime code. Unlike sonofs it also carries a random 32-bit cookie that must
 * match the record, so ids cannot be guessed or enumerated.
 *
 * Binary layout (21 bytes, big-endian) → 28 base64url characters, no padding:
 *   version u8 | group u8 | server u8 | bundle u24 | offset/8 u40 | size u40 | mime u8 | cookie u32
 */
export interface FileLocation {
  group: number;
  server: number;
  /** 24-bit bundle number: dir = bundle >> 16, subDir = (bundle >> 8) & 255, file = bundle & 255. */
  bundle: number;
  /** Byte offset of the record (its header) in the bundle; a multiple of 8. */
  offset: number;
  /** Size of the file's data in bytes. */
  size: number;
  mimeCode: number;
  cookie: number;
}

const VERSION = 1;
const BYTES = 21;
export const FILE_ID_LENGTH = 28;
const ID_RE = /^[A-Za-z0-9_-]{28}$/;
export const MAX_BUNDLE = 0xffffff;
const MAX_U40 = 2 ** 40 - 1;

export function encodeFileId(loc: FileLocation): string {
  if (loc.offset % 8 !== 0) throw new RangeError(`record offset ${loc.offset} is not 8-aligned`);
  const b = Buffer.alloc(BYTES);
  b.writeUInt8(VERSION, 0);
  b.writeUInt8(loc.group, 1);
  b.writeUInt8(loc.server, 2);
  b.writeUIntBE(loc.bundle, 3, 3);
  b.writeUIntBE(loc.offset / 8, 6, 5);
  b.writeUIntBE(loc.size, 11, 5);
  b.writeUInt8(loc.mimeCode, 16);
  b.writeUInt32BE(loc.cookie >>> 0, 17);
  return b.toString('base64url');
}

/** Strict parse: anything that is not exactly a v1 id is a 400, never a guess. */
export function decodeFileId(id: unknown): FileLocation {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new BadRequestError('INVALID_FILE_ID', `fileid must be ${FILE_ID_LENGTH} base64url characters`);
  }
  const b = Buffer.from(id, 'base64url');
  // base64url of 21 bytes is exactly 28 chars with no spare bits, so the
  // round trip is exact; check anyway so no two strings name one file.
  if (b.length !== BYTES || b.toString('base64url') !== id) {
    throw new BadRequestError('INVALID_FILE_ID', 'fileid is not canonical base64url');
  }
  if (b.readUInt8(0) !== VERSION) {
    throw new BadRequestError('INVALID_FILE_ID', `fileid version ${b.readUInt8(0)} is not supported`);
  }
  const loc: FileLocation = {
    group: b.readUInt8(1),
    server: b.readUInt8(2),
    bundle: b.readUIntBE(3, 3),
    offset: b.readUIntBE(6, 5) * 8,
    size: b.readUIntBE(11, 5),
    mimeCode: b.readUInt8(16),
    cookie: b.readUInt32BE(17),
  };
  if (!isKnownMimeCode(loc.mimeCode)) {
    throw new BadRequestError('INVALID_FILE_ID', `fileid has an unknown mime code ${loc.mimeCode}`);
  }
  if (loc.size > MAX_U40) throw new BadRequestError('INVALID_FILE_ID', 'fileid size out of range');
  return loc;
}

/**
 * Cookies come from a pool of CSPRNG bytes filled 1,024 cookies at a time: a
 * call into the CSPRNG per upload cost about 4% of storing a small file.
 */
const cookiePool = Buffer.alloc(4096);
let cookiePos = cookiePool.length;

export function newCookie(): number {
  if (cookiePos === cookiePool.length) {
    randomFillSync(cookiePool);
    cookiePos = 0;
  }
  const cookie = cookiePool.readUInt32BE(cookiePos);
  cookiePos += 4;
  return cookie;
}
