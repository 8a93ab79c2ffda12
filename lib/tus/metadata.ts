import { tusErrors } from './errors';

/** Canonical base64 (with padding), as the spec requires for metadata values. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Keys: visible ASCII without comma (the spec forbids spaces and commas, and wants ASCII). */
const KEY = /^[\x21-\x2b\x2d-\x7e]+$/;

/**
 * Upload-Metadata (Creation): `key base64,key2 base64,key3`. Parsed strictly:
 * an empty key, a space inside a pair's value, non-canonical base64 or a key
 * given twice is a 400, so what we echo in HEAD is exactly what was accepted.
 * Whitespace around a pair is tolerated (RFC 9110 list syntax).
 */
export function parseMetadata(header: string | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (header === undefined || header.trim() === '') return out;
  for (const raw of header.split(',')) {
    const pair = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    const space = pair.indexOf(' ');
    const key = space < 0 ? pair : pair.slice(0, space);
    const value = space < 0 ? '' : pair.slice(space + 1);
    if (!KEY.test(key)) throw tusErrors.bad('INVALID_METADATA', `Upload-Metadata has an invalid key in "${pair}"`);
    if (!BASE64.test(value)) throw tusErrors.bad('INVALID_METADATA', `Upload-Metadata value of "${key}" is not base64`);
    if (out.has(key)) throw tusErrors.bad('INVALID_METADATA', `Upload-Metadata has the key "${key}" twice`);
    out.set(key, Buffer.from(value, 'base64'));
  }
  return out;
}

/** A metadata value as UTF-8 text (filename, filetype), or undefined when absent or empty. */
export function metadataText(meta: Map<string, Buffer>, key: string): string | undefined {
  const v = meta.get(key);
  if (!v || v.length === 0) return undefined;
  const text = v.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(v)) throw tusErrors.bad('INVALID_METADATA', `Upload-Metadata "${key}" is not UTF-8 text`);
  return text;
}

/** The Upload-Metadata header for a map (used by tests and clients of this module). */
export function formatMetadata(meta: Record<string, string | Buffer | undefined>): string {
  return Object.entries(meta)
    .map(([ k, v ]) => (v === undefined || v.length === 0 ? k : `${k} ${Buffer.from(v).toString('base64')}`))
    .join(',');
}
