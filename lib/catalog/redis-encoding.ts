import type { BlobInfo } from './types';
import { StoredLink, decodeBlob, decodeLink, encodeBlob, encodeLink } from './lmdb-encoding';

/**
 * Values of the Redis catalog (redis-catalog.ts): a decimal number, ':', then
 * catalog-encoding's bytes (lmdb-encoding.ts), which may be absent. The
 * compare-and-set script compares whole values, so each holds all it is.
 */

/**
 * A content as its bucket holds it: its links counted (refs), then its blob.
 * No blob: a placeholder a rebuild leaves for links replayed before the
 * content's own record (which another node's bundles hold); it answers no read.
 */
export interface StoredContent {
  refs: number;
  blob?: BlobInfo;
}

export function encodeContent(refs: number, blob: Omit<BlobInfo, 'refs'> | undefined): Buffer {
  const head = Buffer.from(`${refs}:`);
  return blob ? Buffer.concat([ head, encodeBlob({ ...blob, refs: 0 }) ]) : head;
}

export function decodeContent(sha1: string, v: Buffer | null): StoredContent | undefined {
  if (!v) return undefined;
  const colon = v.indexOf(0x3a);
  const refs = Number(v.toString('latin1', 0, colon));
  return colon + 1 < v.length ? { refs, blob: { ...decodeBlob(sha1, v.subarray(colon + 1)), refs } } : { refs };
}

/**
 * A user's link as the links hash holds it: the seq of the record that last
 * set it, then the link. No link: deleted, a tombstone that keeps the delete's
 * seq, so a replayed record older than the delete does not bring it back.
 */
export interface StoredLinkState {
  seq: number;
  link?: StoredLink;
}

export function encodeLinkState(seq: number, link?: StoredLink): Buffer {
  const head = Buffer.from(`${seq}:`);
  return link ? Buffer.concat([ head, encodeLink(link) ]) : head;
}

export function decodeLinkState(v: Buffer | null): StoredLinkState | undefined {
  if (!v) return undefined;
  const colon = v.indexOf(0x3a);
  const seq = Number(v.toString('latin1', 0, colon));
  return colon + 1 < v.length ? { seq, link: decodeLink(v.subarray(colon + 1)) } : { seq };
}

/**
 * A user id as key bytes, one to one: UTF-8 for a well-formed string; a string
 * with lone surrogates (which UTF-8 would turn into U+FFFD, merging users) is
 * 0xFF, which UTF-8 never holds, then its UTF-16 code units.
 */
export function userBytes(user: string): Buffer {
  const utf8 = Buffer.from(user, 'utf8');
  return utf8.toString('utf8') === user ? utf8 : Buffer.concat([ Buffer.from([ 0xff ]), Buffer.from(user, 'utf16le') ]);
}
