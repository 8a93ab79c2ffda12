import type { FileLocation } from './bundle/file-id';
import { RecordHeader, RecordKind, crc32c, decodeMeta } from './bundle/record';
import type { Catalog } from './catalog/types';
import { MetadataUnavailableError, NotFoundError } from './errors';
import { DEFAULT_MIME, mimeFromCode } from './mime';

/** What a read by file id answers about the file (store.ts FileStat). */
export interface CheckedStat {
  fileId: string;
  fileHash: string;
  size: number;
  mime: string;
  time: number;
}

export function fileNotFound(): NotFoundError {
  return new NotFoundError('FILE_NOT_FOUND', 'no file has this fileid');
}

/**
 * The check behind every read by file id: the record must be a blob matching
 * the id, and its content still live in the catalog (content whose last link
 * was deleted is garbage: its id no longer answers).
 *
 * While the shared catalog (Redis) is unreachable, liveness is unknown: the
 * file is served on what its record proves (the header above, its meta's
 * checksum here, the data's checksum as it is read), so a file deleted just
 * before or during the outage may still be served by id until Redis is back.
 * The catalog's call fails fast then (catalog/redis-guard.ts), so such a read
 * waits on Redis no longer than its call timeout.
 */
export async function checkRead(
  catalog: Catalog, fileId: string, loc: FileLocation, h: RecordHeader | undefined, readMeta: (h: RecordHeader) => Promise<Buffer>,
): Promise<CheckedStat> {
  if (!h || h.kind !== RecordKind.Blob || h.cookie !== loc.cookie || h.dataLen !== loc.size || h.mimeCode !== loc.mimeCode) {
    throw fileNotFound();
  }
  const sha1 = h.sha1.toString('hex');
  const stat = { fileId, fileHash: sha1, size: h.dataLen, time: h.time };
  let blob;
  try {
    blob = await catalog.getBlob(sha1);
  } catch (err) {
    if (!(err instanceof MetadataUnavailableError)) throw err;
    return { ...stat, mime: await mimeOfRecord(h, readMeta) };
  }
  if (!blob || blob.fileId !== fileId) throw fileNotFound();
  return { ...stat, mime: blob.mime ?? mimeFromCode(h.mimeCode) ?? DEFAULT_MIME };
}

/** The type the uploader gave, from the record's meta when it passes its checksum, else from the header's code. */
async function mimeOfRecord(h: RecordHeader, readMeta: (h: RecordHeader) => Promise<Buffer>): Promise<string> {
  const fromCode = mimeFromCode(h.mimeCode) ?? DEFAULT_MIME;
  const meta = await readMeta(h);
  if (meta.length !== h.metaLen || crc32c(meta) !== h.metaCrc) return fromCode;
  try {
    const m = decodeMeta(meta).m;
    return typeof m === 'string' && m ? m : fromCode;
  } catch {
    return fromCode;
  }
}
