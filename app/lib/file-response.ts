import type { FileSource } from '../../lib/replication';
import contentDisposition from 'content-disposition';
import type { Context } from 'egg';
import { extension as mimeExtension } from 'mime-types';
import rangeParser from 'range-parser';
import type { FileStat } from '../../lib';
import { RangeNotSatisfiableError, decodeFileId } from '../../lib';

/** Responses of small files are sent from one positioned read; larger ones stream. */
const SMALL_FILE = 64 * 1024;

/** The name a file is downloaded under when the caller has none of their own: its id, with its type's extension. */
export function idName(st: FileStat): string {
  const ext = mimeExtension(st.mime);
  return ext ? `${st.fileId}.${ext}` : st.fileId;
}

/** RFC 9110 §14.1.1: a range whose last byte is before its first makes the header invalid (ignored). */
function hasBackwardRange(header: string): boolean {
  return [ ...header.matchAll(/(\d+)\s*-\s*(\d+)/g) ].some(m => Number(m[2]) < Number(m[1]));
}

/**
 * Answers GET or HEAD of a file this node holds: ETag (its sha1),
 * Last-Modified, Content-Disposition (`nameOf`), one byte range (206, or 416
 * with `Content-Range: bytes *\/size`), If-None-Match/If-Modified-Since (304)
 * and If-Range; small files from one read, others streamed.
 */
export async function sendStoredFile(ctx: Context, id: string, nameOf: (st: FileStat) => Promise<string>, from: FileSource = ctx.sonofs): Promise<void> {
  // A small file comes with its stat from one positioned read.
  const small = ctx.method === 'GET' && !ctx.get('Range') && decodeFileId(id).size <= SMALL_FILE;
  const file = small ? await from.getFile(id) : undefined;
  const st: FileStat = file ?? await from.stat(id);
  const name = await nameOf(st);
  ctx.set('ETag', `"${st.fileHash}"`);
  ctx.set('Last-Modified', new Date(st.time).toUTCString());
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Content-Disposition', contentDisposition(name));
  ctx.type = st.mime;
  ctx.status = 200; // koa's freshness check only applies to a 2xx response
  if (ctx.fresh) {
    ctx.status = 304;
    return;
  }
  let start = 0;
  let end = st.size - 1;
  const rangeHeader = ctx.get('Range');
  const ifRange = ctx.get('If-Range');
  if (rangeHeader && (!ifRange || ifRange === `"${st.fileHash}"`) && !hasBackwardRange(rangeHeader)) {
    const ranges = rangeParser(st.size, rangeHeader, { combine: true });
    if (ranges === -1) {
      ctx.set('Content-Range', `bytes */${st.size}`);
      throw new RangeNotSatisfiableError(st.size);
    }
    // Malformed (-2) or several ranges: answer with the whole file, as RFC 9110 allows.
    if (Array.isArray(ranges) && ranges.length === 1 && ranges.type === 'bytes') {
      ({ start, end } = ranges[0]);
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${start}-${end}/${st.size}`);
    }
  }
  ctx.length = st.size === 0 ? 0 : end - start + 1;
  if (ctx.method === 'HEAD') {
    ctx.status = ctx.status === 206 ? 206 : 200;
    return;
  }
  if (file) {
    ctx.body = file.buffer;
  } else {
    ctx.body = await from.createReadStream(id, { start, end });
  }
}
