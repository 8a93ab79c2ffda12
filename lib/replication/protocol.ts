import { BadRequestError } from '../errors';
import { MAX_BUNDLE } from '../bundle/file-id';
import { RECORD_ALIGN } from '../bundle/record';

/**
 * What a node sends a member of its group that copies its bundles: a stream
 * of frames, each a 16-byte head (type u8 at 0, a u48 at 8, little-endian)
 * and a body:
 *   RECORD  u48 = the record's offset; body = the record as stored (header, data, meta)
 *   MARK    u48 = offset; body = a Pending or Padding header only (the replica stays walkable)
 *   END     u48 = length of the JSON body (a StreamEnd): what is left to ask for
 * Only complete, committed records are sent; the reader checks every crc itself.
 */
export const FRAME_HEAD = 16;
export enum FrameType {
  Record = 1,
  Mark = 2,
  End = 3,
}

export function frameHead(type: FrameType, value: number): Buffer {
  const b = Buffer.alloc(FRAME_HEAD);
  b.writeUInt8(type, 0);
  b.writeUIntLE(value, 8, 6);
  return b;
}

export function readFrameHead(b: Buffer): { type: number; value: number } {
  return { type: b.readUInt8(0), value: b.readUIntLE(8, 6) };
}

/**
 * A place of a bundle that may still change: a slot whose upload is in
 * progress (Pending), or the unwritten rest of an extent a worker still holds.
 * [start, end), 8-aligned.
 */
export type Hole = [ number, number ];

/** The END frame. */
export interface StreamEnd {
  /** where the walk of the open range stopped (everything before it is sent or a hole); null when none was asked */
  end: number | null;
  /** places inside the asked ranges to ask for again */
  holes: Hole[];
  /** damaged records the walk stepped over (not sent) */
  skipped: number;
}

/** A range to walk: [start, end), end null for "to the end of what is written". */
export interface WalkRange {
  start: number;
  end: number | null;
}

/** Ranges per request: a stream asks for at most this many holes at once. */
export const MAX_RANGES = 256;
const MAX_OFFSET = 2 ** 48;

/** A bundle number from a URL: digits only, within what a file id holds. */
export function parseBundle(text: unknown): number {
  if (typeof text !== 'string' || !/^\d{1,8}$/.test(text) || Number(text) > MAX_BUNDLE) {
    throw new BadRequestError('INVALID_BUNDLE', `bundle must be an integer from 0 to ${MAX_BUNDLE}`);
  }
  return Number(text);
}

/**
 * `ranges=a-b,c-d,e-`: ascending, apart, 8-aligned offsets; only the last may
 * be open. Offsets, never paths: the bundle file is named by its number.
 */
export function parseRanges(text: unknown): WalkRange[] {
  if (typeof text !== 'string' || text.length > MAX_RANGES * 32) throw badRanges('give ranges as start-end pairs, e.g. ranges=0-');
  const out: WalkRange[] = [];
  const parts = text.split(',');
  if (parts.length > MAX_RANGES) throw badRanges(`at most ${MAX_RANGES} ranges`);
  for (const [ i, part ] of parts.entries()) {
    const m = /^(\d{1,15})-(\d{1,15})?$/.exec(part);
    if (!m) throw badRanges(`"${part}" is not start-end`);
    const start = Number(m[1]);
    const end = m[2] === undefined ? null : Number(m[2]);
    if (end === null && i !== parts.length - 1) throw badRanges('only the last range may be open');
    if (start % RECORD_ALIGN || (end !== null && end % RECORD_ALIGN)) throw badRanges(`offsets must be multiples of ${RECORD_ALIGN}`);
    if (start >= MAX_OFFSET || (end !== null && (end <= start || end > MAX_OFFSET))) throw badRanges(`"${part}" is empty or out of range`);
    const prev = out[out.length - 1];
    if (prev && start < prev.end!) throw badRanges('ranges must be ascending and apart');
    out.push({ start, end });
  }
  return out;
}

export function formatRanges(ranges: WalkRange[]): string {
  return ranges.map(r => `${r.start}-${r.end ?? ''}`).join(',');
}

function badRanges(why: string): BadRequestError {
  return new BadRequestError('INVALID_RANGES', `ranges: ${why}`);
}

/** A node's instance id as a query parameter (32 hex digits). */
export function parseInstance(text: unknown): string {
  if (typeof text !== 'string' || !/^[0-9a-f]{32}$/.test(text)) throw new BadRequestError('INVALID_INSTANCE', 'instance must be 32 hex digits');
  return text;
}

/** A record's offset from a URL: digits, 8-aligned (records start on 8-byte boundaries). */
export function parseOffset(text: unknown): number {
  if (typeof text !== 'string' || !/^\d{1,15}$/.test(text) || Number(text) % RECORD_ALIGN || Number(text) >= MAX_OFFSET) {
    throw new BadRequestError('INVALID_OFFSET', `offset must be a multiple of ${RECORD_ALIGN} below 2^48`);
  }
  return Number(text);
}

/** A group peer from a URL: `<group>-<server>`, each 1 to 255. */
export function parsePeer(text: unknown): { group: number; server: number } {
  const m = typeof text === 'string' ? /^(\d{1,3})-(\d{1,3})$/.exec(text) : null;
  const group = Number(m?.[1]);
  const server = Number(m?.[2]);
  if (!m || group < 1 || group > 255 || server < 1 || server > 255) throw new BadRequestError('INVALID_PEER', 'peer must be <group>-<server>, each from 1 to 255');
  return { group, server };
}
