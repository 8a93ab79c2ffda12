import mimeTypes from 'mime-types';

/**
 * One-byte mime codes carried in file ids (sonofs keeps the mime in the name
 * so a read needs no lookup). Code 0 is application/octet-stream; OTHER means
 * "read the full type from the record's metadata". Append only: a code, once
 * shipped, keeps its meaning forever.
 */
const TABLE: readonly string[] = [
  'application/octet-stream',
  'image/jpeg', 'image/png', 'image/gif', 'text/plain', 'text/html',
  'image/webp', 'image/svg+xml', 'image/bmp', 'image/x-icon', 'image/tiff', 'image/avif', 'image/heic',
  'text/css', 'text/csv', 'text/markdown', 'text/xml', 'text/javascript',
  'application/json', 'application/xml', 'application/pdf', 'application/zip', 'application/gzip',
  'application/x-tar', 'application/x-7z-compressed', 'application/vnd.rar', 'application/x-bzip2',
  'application/msword', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.ms-excel', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.ms-powerpoint', 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/wasm', 'application/javascript',
  'audio/mpeg', 'audio/ogg', 'audio/wav', 'audio/webm', 'audio/aac', 'audio/flac',
  'video/mp4', 'video/webm', 'video/ogg', 'video/quicktime', 'video/x-msvideo', 'video/mpeg',
  'font/woff', 'font/woff2', 'font/ttf', 'font/otf',
];

export const MIME_OTHER = 255;
export const DEFAULT_MIME = 'application/octet-stream';
const CODES = new Map(TABLE.map((m, i) => [ m, i ]));

// type/subtype per RFC 6838 restricted-name, plus optional parameters we drop.
const MIME_RE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$/;

/** The code stored in a file id for `mime`, or MIME_OTHER when not in the table. */
export function mimeCode(mime: string): number {
  return CODES.get(mime) ?? MIME_OTHER;
}

/** The type for a code from the table; undefined for MIME_OTHER or unknown codes. */
export function mimeFromCode(code: number): string | undefined {
  return TABLE[code];
}

export function isKnownMimeCode(code: number): boolean {
  return code === MIME_OTHER || code < TABLE.length;
}

/**
 * The type to store: the client's if it is a valid, specific type; else a
 * guess from the file name; else octet-stream. Parameters (charset=…) are dropped.
 */
export function resolveMime(declared: string | undefined, filename: string): string {
  const clean = (declared ?? '').split(';')[0].trim().toLowerCase();
  if (clean && clean !== DEFAULT_MIME && MIME_RE.test(clean)) return clean;
  const guessed = mimeTypes.lookup(filename);
  return guessed && MIME_RE.test(guessed) ? guessed : DEFAULT_MIME;
}
