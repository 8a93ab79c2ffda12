import type { AllocState, BlobInfo, ExtentLease } from './types';
import { DEFAULT_MIME, mimeFromCode } from '../mime';

/**
 * Keys and values of the LMDB catalog, format 2: bytes, not msgpack objects
 * with field names and hex strings. Every stored file costs three entries (its
 * blob, its link and its line in the user's time index), so each byte here is
 * paid a million times on a node of a million files; LMDB adds about 10 bytes
 * per entry, and a B-tree filled in random order leaves its pages about a
 * third empty.
 *
 * Keys, whose first byte says what they hold ('t' sorts last: a single user's
 * time index grows at the end of the tree, where LMDB splits a full page
 * unevenly and leaves it full):
 *   'a'                       allocator state: bundle i32 | next u48 | nextBundle u32
 *   'b' sha1                  blob: file id (21 bytes) | time u48 | refs varint | mime (text; only when the id's code does not name it)
 *   'c'                       users numbered so far u32
 *   'e' bundle u24 | offset u48   extent lease: length u48 | owner u32
 *   'f'                       format version u8
 *   'i' user (text)           the user's number: varint
 *   'l' uid | sha1            link: at u48 | zigzag varint (mtime - at) | name (text)
 *   'r'                       a rebuild from the bundles under way: u8, 1 when it checks data
 *   's'                       last seq u48
 *   't' uid | at u48 | sha1   time index: no value
 * A user is numbered at its first link (uid, a varint: no number's bytes begin
 * another's, so a user's keys are exactly those that begin with its number),
 * and links and the time index carry that number instead of the user id, which
 * an app may make long. sha1s are their 20 raw bytes; integers are big-endian,
 * so keys sort by them. The file id carries the size and mime code
 * (bundle/file-id.ts), so the blob does not repeat them.
 *
 * Text (a user id, a name, a mime) is its UTF-8 when it is well formed. A JS
 * string may hold lone surrogates, which UTF-8 turns into U+FFFD: "x\ud800"
 * and "x\ufffd" would be one user, who could list, read and delete the
 * other's files. Such a string is 0xFF (a byte UTF-8 never uses) then its
 * UTF-16LE code units, which give it back exactly; well-formed text keeps
 * the bytes it always had.
 */
export const FORMAT_VERSION = 2;

const SHA1_BYTES = 20;
const FILE_ID_BYTES = 21;
const U48 = 6;
const SHA1_HEX = /^[0-9a-f]{40}$/;

export const ALLOC_KEY = Buffer.from('a');
export const FORMAT_KEY = Buffer.from('f');
export const REBUILD_KEY = Buffer.from('r');
export const SEQ_KEY = Buffer.from('s');
export const USER_COUNT_KEY = Buffer.from('c');
export const BLOBS = { start: Buffer.from('b'), end: Buffer.from('c') };
export const LEASES = { start: Buffer.from('e'), end: Buffer.from('f') };

/** The 20 bytes of a sha1 given as 40 lowercase hex digits; undefined for anything else (no such content). */
export function sha1Bytes(hex: string): Buffer | undefined {
  return typeof hex === 'string' && SHA1_HEX.test(hex) ? Buffer.from(hex, 'hex') : undefined;
}

export function blobKey(sha1: Buffer): Buffer {
  const key = Buffer.allocUnsafe(1 + SHA1_BYTES);
  key[0] = 0x62; // 'b'
  sha1.copy(key, 1);
  return key;
}

/** The sha1 (hex) of a blob key. */
export function sha1OfBlobKey(key: Buffer): string {
  return key.toString('hex', 1);
}

export function userKey(user: string): Buffer {
  const key = Buffer.allocUnsafe(1 + textLength(user));
  key[0] = 0x69; // 'i'
  writeText(key, 1, user);
  return key;
}

export function encodeUserId(uid: number): Buffer {
  const v = Buffer.allocUnsafe(varintLength(uid));
  writeVarint(v, 0, uid);
  return v;
}

export function decodeUserId(v: Buffer): number {
  return readVarint(v, 0).value;
}

/** `kind` and the user's number; `extra` bytes left for the caller. */
function userRangeKey(kind: number, uid: number, extra: number): { key: Buffer; pos: number } {
  const key = Buffer.allocUnsafe(1 + varintLength(uid) + extra);
  key[0] = kind;
  return { key, pos: writeVarint(key, 1, uid) };
}

export function linkKey(uid: number, sha1: Buffer): Buffer {
  const { key, pos } = userRangeKey(0x6c, uid, SHA1_BYTES); // 'l'
  sha1.copy(key, pos);
  return key;
}

export function timeKey(uid: number, at: number, sha1: Buffer): Buffer {
  const { key, pos } = userRangeKey(0x74, uid, U48 + SHA1_BYTES); // 't'
  key.writeUIntBE(at, pos, U48);
  sha1.copy(key, pos + U48);
  return key;
}

/** A user's time index, newest first: lmdb's reverse range from `start` down to `end` (both outside it). */
export function timeRange(uid: number): { start: Buffer; end: Buffer } {
  const end = userRangeKey(0x74, uid, 0).key;
  const start = Buffer.from(end);
  start[start.length - 1]++; // a varint's last byte is under 0x80: no carry
  return { start, end };
}

/** The sha1 at the end of a time-index key: raw, and hex. */
export function sha1OfTimeKey(key: Buffer): { sha1: Buffer; hex: string } {
  const sha1 = key.subarray(key.length - SHA1_BYTES);
  return { sha1, hex: sha1.toString('hex') };
}

export function encodeBlob(b: Omit<BlobInfo, 'sha1'>): Buffer {
  const id = Buffer.from(b.fileId, 'base64url');
  if (id.length !== FILE_ID_BYTES || id.toString('base64url') !== b.fileId) throw new RangeError(`${b.fileId} is not a file id`);
  if (id.readUIntBE(11, 5) !== b.size) throw new RangeError(`file ${b.fileId} has size ${b.size}, not the one in its id`);
  const mime = mimeFromCode(id[16]) === b.mime ? '' : b.mime;
  const v = Buffer.allocUnsafe(FILE_ID_BYTES + U48 + varintLength(b.refs) + textLength(mime));
  id.copy(v, 0);
  v.writeUIntBE(b.time, FILE_ID_BYTES, U48);
  writeText(v, writeVarint(v, FILE_ID_BYTES + U48, b.refs), mime);
  return v;
}

export function decodeBlob(sha1: string, v: Buffer): BlobInfo {
  const time = v.readUIntBE(FILE_ID_BYTES, U48);
  const refs = readVarint(v, FILE_ID_BYTES + U48);
  return {
    sha1,
    fileId: v.toString('base64url', 0, FILE_ID_BYTES),
    size: v.readUIntBE(11, 5),
    mime: refs.end < v.length ? readText(v, refs.end) : mimeFromCode(v[16]) ?? DEFAULT_MIME,
    time,
    refs: refs.value,
  };
}

/** What a link stores: the rest of LinkInfo is in its key. */
export interface StoredLink { name: string; at: number; mtime: number }

export function encodeLink(l: StoredLink): Buffer {
  const delta = zigzag(l.mtime - l.at);
  const v = Buffer.allocUnsafe(U48 + varintLength(delta) + textLength(l.name));
  v.writeUIntBE(l.at, 0, U48);
  writeText(v, writeVarint(v, U48, delta), l.name);
  return v;
}

export function decodeLink(v: Buffer): StoredLink {
  const at = v.readUIntBE(0, U48);
  const delta = readVarint(v, U48);
  return { name: readText(v, delta.end), at, mtime: at + unzigzag(delta.value) };
}

export function encodeSeq(seq: number): Buffer {
  const v = Buffer.allocUnsafe(U48);
  v.writeUIntBE(seq, 0, U48);
  return v;
}

export function decodeSeq(v: Buffer | undefined): number {
  return v ? v.readUIntBE(0, U48) : 0;
}

export function encodeU32(n: number): Buffer {
  const v = Buffer.allocUnsafe(4);
  v.writeUInt32BE(n, 0);
  return v;
}

export function encodeAlloc(s: AllocState): Buffer {
  const v = Buffer.allocUnsafe(4 + U48 + 4);
  v.writeInt32BE(s.bundle, 0);
  v.writeUIntBE(s.next, 4, U48);
  v.writeUInt32BE(s.nextBundle, 4 + U48);
  return v;
}

export function decodeAlloc(v: Buffer): AllocState {
  return { bundle: v.readInt32BE(0), next: v.readUIntBE(4, U48), nextBundle: v.readUInt32BE(4 + U48) };
}

export function leaseKey(bundle: number, offset: number): Buffer {
  const key = Buffer.allocUnsafe(1 + 3 + U48);
  key[0] = 0x65; // 'e'
  key.writeUIntBE(bundle, 1, 3);
  key.writeUIntBE(offset, 4, U48);
  return key;
}

export function encodeLease(l: ExtentLease): Buffer {
  const v = Buffer.allocUnsafe(U48 + 4);
  v.writeUIntBE(l.length, 0, U48);
  v.writeUInt32BE(l.owner, U48);
  return v;
}

export function decodeLease(key: Buffer, v: Buffer): ExtentLease {
  return { bundle: key.readUIntBE(1, 3), offset: key.readUIntBE(4, U48), length: v.readUIntBE(0, U48), owner: v.readUInt32BE(U48) };
}

// Text: UTF-8, or ILL_FORMED then UTF-16LE for a string with lone surrogates (see the top).

const ILL_FORMED = 0xff;
const LONE_SURROGATE = /\p{Cs}/u;

function textLength(s: string): number {
  return LONE_SURROGATE.test(s) ? 1 + s.length * 2 : Buffer.byteLength(s);
}

/** Writes `s` at `pos` (textLength(s) bytes). */
function writeText(buf: Buffer, pos: number, s: string): void {
  if (!LONE_SURROGATE.test(s)) {
    buf.write(s, pos, 'utf8');
    return;
  }
  buf[pos] = ILL_FORMED;
  buf.write(s, pos + 1, 'utf16le');
}

/** The text from `pos` to the end of `buf`. */
function readText(buf: Buffer, pos: number): string {
  return buf[pos] === ILL_FORMED ? buf.toString('utf16le', pos + 1) : buf.toString('utf8', pos);
}

// Unsigned LEB128, with arithmetic rather than bit operations: values go past 32 bits.

function varintLength(n: number): number {
  let len = 1;
  for (; n >= 128; len++) n = Math.floor(n / 128);
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot store ${n} as a varint`);
  for (; n >= 128; n = Math.floor(n / 128)) buf[pos++] = (n % 128) | 128;
  buf[pos++] = n;
  return pos;
}

function readVarint(buf: Buffer, pos: number): { value: number; end: number } {
  let value = 0;
  for (let scale = 1; ; scale *= 128) {
    if (pos >= buf.length) throw new RangeError('a catalog value ends inside a number');
    const b = buf[pos++];
    value += (b & 127) * scale;
    if (b < 128) return { value, end: pos };
  }
}

const zigzag = (n: number): number => (n >= 0 ? n * 2 : -n * 2 - 1);
const unzigzag = (n: number): number => (n % 2 === 0 ? n / 2 : -(n + 1) / 2);
