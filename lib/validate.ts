import { BadRequestError } from './errors';

/** Longest file name kept, in UTF-8 bytes (300 CJK characters fit). */
export const MAX_NAME_BYTES = 1024;
const CONTROL = /[\u0000-\u001f\u007f]/g;
const HAS_CONTROL = /[\u0000-\u001f\u007f]/;
const SHA1 = /^[0-9a-f]{40}$/;

/**
 * A file name is a label, never a path: control characters (NUL included) are
 * dropped and everything else is kept as given, so `../x` stays the text `../x`.
 */
export function checkName(name: unknown): string {
  if (name !== undefined && typeof name !== 'string') throw new BadRequestError('INVALID_FILENAME', 'filename must be a string');
  const clean = (name ?? '').replace(CONTROL, '').trim();
  if (Buffer.byteLength(clean) > MAX_NAME_BYTES) {
    throw new BadRequestError('FILENAME_TOO_LONG', `filename is longer than ${MAX_NAME_BYTES} bytes`);
  }
  return clean || 'file';
}

/** A user id the store accepts: what checkUser lets through. */
export function isUserId(user: unknown): user is string {
  return typeof user === 'string' && !!user && user.length <= 256 && !HAS_CONTROL.test(user);
}

export function checkUser(user: unknown): string {
  if (!isUserId(user)) {
    throw new BadRequestError('INVALID_USER', 'user id must be a non-empty string of at most 256 printable characters');
  }
  // Lone surrogates are no text: UTF-8 and msgpack turn them into U+FFFD, which would merge users.
  if (Buffer.from(user, 'utf8').toString('utf8') !== user) {
    throw new BadRequestError('INVALID_USER', 'user id must be well-formed Unicode (no lone surrogates)');
  }
  return user;
}

/** A content hash as routes take it: 40 hex digits, any case. */
export function checkSha1(value: unknown, field = 'filehash'): string {
  if (typeof value !== 'string' || !value) throw new BadRequestError('MISSING_PARAM', `${field} is required`);
  const v = value.toLowerCase();
  if (!SHA1.test(v)) throw new BadRequestError('INVALID_FILE_HASH', `${field} must be a sha1: 40 hex digits`);
  return v;
}
