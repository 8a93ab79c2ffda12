import { tusErrors } from './errors';

export type Concat = { kind: 'partial' } | { kind: 'final'; urls: string[] };

/** Most partial uploads one final may name (a partial named twice counts twice); more is a 400. */
export const TUS_MAX_CONCAT_PARTS = 1000;

/**
 * Most finals that may wait for one unfinished partial (concatenation-unfinished):
 * the PATCH that finishes the partial concatenates them all before it answers.
 * A further final is a 409 until the partial finishes or one of them stops waiting.
 */
export const TUS_MAX_WAITING_FINALS = 16;

/** Ids the session engine hands out: 128 random bits, base64url. */
const UPLOAD_ID = /^[A-Za-z0-9_-]{22}$/;

/**
 * Upload-Concat (Concatenation): `partial`, or `final;<url> <url> ...` with
 * absolute or relative URLs separated by spaces. Anything else is a 400.
 */
export function parseConcat(value: string | undefined): Concat | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (v === 'partial') return { kind: 'partial' };
  const m = /^final;(.*)$/s.exec(v);
  if (!m) throw tusErrors.bad('INVALID_UPLOAD_CONCAT', 'Upload-Concat must be "partial" or "final;<urls>"');
  const urls = m[1].trim().split(/ +/).filter(Boolean);
  if (!urls.length) throw tusErrors.bad('INVALID_UPLOAD_CONCAT', 'a final upload needs the URLs of its partial uploads');
  if (urls.length > TUS_MAX_CONCAT_PARTS) {
    throw tusErrors.bad('TOO_MANY_PARTS', `a final upload may name at most ${TUS_MAX_CONCAT_PARTS} partial uploads, not ${urls.length}`);
  }
  return { kind: 'final', urls };
}

/** Whether a string has the shape of an upload id (cheap check before any lookup). */
export function isUploadId(id: string): boolean {
  return UPLOAD_ID.test(id);
}

/**
 * The upload id in one of a final's URLs: its path must end in
 * `<tusPath>/<id>` (a proxy prefix or scheme and host in front are fine).
 */
export function uploadIdFromUrl(url: string, tusPath: string): string {
  let pathname: string;
  try {
    pathname = new URL(url, 'http://relative.invalid').pathname;
  } catch {
    throw tusErrors.bad('INVALID_UPLOAD_CONCAT', `"${url}" is not a URL`);
  }
  const slash = pathname.lastIndexOf('/');
  const id = pathname.slice(slash + 1);
  if (!isUploadId(id) || !pathname.slice(0, slash).endsWith(tusPath)) {
    throw tusErrors.bad('INVALID_UPLOAD_CONCAT', `"${url}" is not an upload URL under ${tusPath}/`);
  }
  return id;
}
