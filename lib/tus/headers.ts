import { CHECKSUM_ALGORITHMS } from '../sessions';
import { tusErrors } from './errors';

/** The protocol version we speak; the only one in Tus-Version. */
export const TUS_VERSION = '1.0.0';

/** Every extension we implement, in the order OPTIONS lists them (C7: exactly what is supported). */
export const TUS_EXTENSIONS = [
  'creation', 'creation-with-upload', 'creation-defer-length', 'expiration', 'checksum', 'checksum-trailer',
  'termination', 'concatenation', 'concatenation-unfinished',
] as const;

/** Checksum algorithms (lower-case, sha1 mandatory): whatever the session engine can hash. */
export const TUS_CHECKSUM_ALGORITHMS: readonly string[] = CHECKSUM_ALGORITHMS;

export const OFFSET_STREAM = 'application/offset+octet-stream';

/** Request headers a browser client sends (CORS Allow-Headers). */
export const TUS_REQUEST_HEADERS = [
  'Authorization', 'Content-Type', 'Origin', 'X-Requested-With', 'X-Request-ID', 'X-HTTP-Method-Override',
  'Tus-Resumable', 'Upload-Length', 'Upload-Offset', 'Upload-Metadata', 'Upload-Defer-Length', 'Upload-Concat',
  'Upload-Checksum',
];

/** Response headers a browser client must be able to read (CORS Expose-Headers). */
export const TUS_RESPONSE_HEADERS = [
  'Location', 'Upload-Offset', 'Upload-Length', 'Upload-Defer-Length', 'Upload-Metadata', 'Upload-Concat',
  'Upload-Expires', 'Tus-Resumable', 'Tus-Version', 'Tus-Extension', 'Tus-Max-Size', 'Tus-Checksum-Algorithm',
  'Sonofs-File-Id', 'Sonofs-File-Hash', 'Content-Disposition',
];

/**
 * C3: Upload-Offset and Upload-Length are non-negative integers: digits only
 * (no sign, no exponent, no spaces), within the safe-integer range.
 */
export function parseSize(value: string | undefined, header: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(n)) {
    throw tusErrors.bad(`INVALID_${header.toUpperCase().replace(/-/g, '_')}`, `${header} must be a non-negative integer, not "${value}"`);
  }
  return n;
}

/** Creation: Upload-Defer-Length is `1` or absent; anything else is a 400. */
export function parseDeferLength(value: string | undefined): boolean {
  if (value === undefined || value === '') return false;
  if (value !== '1') throw tusErrors.bad('INVALID_UPLOAD_DEFER_LENGTH', 'Upload-Defer-Length must be 1');
  return true;
}

/**
 * C1/C2: every request but OPTIONS must say Tus-Resumable: 1.0.0, or it is
 * refused (412) before anything is done. A plain GET (a browser downloading a
 * finished upload, outside the protocol) may omit it, but not send another version.
 */
export function checkTusResumable(value: string | undefined, method: string): void {
  if (method === 'OPTIONS') return;
  if (value === TUS_VERSION) return;
  if (method === 'GET' && !value) return;
  throw tusErrors.version(value);
}

/** The media type of a Content-Type header, without parameters, lower-case. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}
