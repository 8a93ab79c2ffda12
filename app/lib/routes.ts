import contentDisposition from 'content-disposition';
import type { Application, Context } from 'egg';
import { extension as mimeExtension } from 'mime-types';
import rangeParser from 'range-parser';
import type { FileStat, UserFile } from '../../lib';
import {
  BadRequestError, ForbiddenError, MethodNotAllowedError, NotFoundError, RangeNotSatisfiableError, SonofsError,
  checkSha1, decodeFileId,
} from '../../lib';
import { answeringErrorsWith, sendError } from './http-errors';
import { registerPageRoutes } from './page/routes';
import type { FileSource } from '../../lib/replication';
import { replicaCopy } from './replication-routes';
import { pluginParts } from './multipart';

/** Responses of small files are sent from one positioned read; larger ones stream. */
const SMALL_FILE = 64 * 1024;

/** Errors from any built-in route go through sendError. */
const route = answeringErrorsWith(sendError);

/** A parameter from the query string or a urlencoded/multipart form, as the course reads r.Form. */
function param(ctx: Context, name: string): string | undefined {
  const body = (ctx.request as any).body;
  const v = ctx.query[name] ?? (body && typeof body === 'object' ? body[name] : undefined);
  return typeof v === 'string' ? v : undefined;
}

/** "2006-01-02 15:04:05" in local time, the course's UploadAt format. */
function courseTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The course's FileMeta, plus FileId and Mime. */
function fileMeta(prefix: string, f: UserFile) {
  return {
    FileSha1: f.sha1,
    FileName: f.name,
    FileSize: f.size,
    Location: `${prefix}/download?fileid=${f.fileId}`,
    UploadAt: courseTime(f.at),
    FileId: f.fileId,
    Mime: f.mime,
  };
}

function wantsJson(ctx: Context): boolean {
  return ctx.accepts('html', 'json') === 'json';
}

async function requireUserFile(ctx: Context, hash: string | undefined): Promise<UserFile> {
  const f = await ctx.sonofs.meta(checkSha1(hash));
  if (!f) throw new NotFoundError('FILE_NOT_FOUND', 'you have no file with this filehash');
  return f;
}

/** The next multipart part; a body busboy cannot parse is the client's error (400). */
async function nextPart(parts: AsyncIterator<any>): Promise<IteratorResult<any>> {
  try {
    return await parts.next();
  } catch (err) {
    const e = err as Error & { status?: number };
    if (e.status || e instanceof SonofsError) throw e;
    throw new BadRequestError('MALFORMED_MULTIPART', `multipart body could not be parsed: ${e.message}`);
  }
}

/**
 * A file id is a capability: anyone holding it may download, so the auth hook
 * is only asked for the caller's own name of the file, and a refusal is fine.
 */
async function downloadName(ctx: Context, st: FileStat): Promise<string> {
  const user = await ctx.sonofs.userIfAny();
  const own = user === undefined ? undefined : await ctx.app.sonofs.getUserFile(user, st.fileHash);
  const ext = mimeExtension(st.mime);
  return own?.name ?? (ext ? `${st.fileId}.${ext}` : st.fileId);
}

/** RFC 9110 §14.1.1: a range whose last byte is before its first makes the header invalid (ignored). */
function hasBackwardRange(header: string): boolean {
  return [ ...header.matchAll(/(\d+)\s*-\s*(\d+)/g) ].some(m => Number(m[2]) < Number(m[1]));
}

/**
 * JSON answers for everything else under the prefix: 405 with Allow for a
 * known path and another method, 404 for an unknown path. Runs after the
 * other routes (it calls next first), whatever the order they were added in.
 */
function fallback(app: Application, prefix: string) {
  return async (ctx: Context, next: () => Promise<void>) => {
    await next();
    if (ctx.status !== 404 || ctx.body !== undefined) return;
    const allowed = new Set<string>();
    for (const layer of (app.router as any).stack as Array<{ match(path: string): boolean; methods: string[]; path: string }>) {
      if (layer.path !== `${prefix}/(.*)` && layer.match(ctx.path)) layer.methods.forEach(m => allowed.add(m));
    }
    if (allowed.size) {
      ctx.set('Allow', [ ...allowed ].join(', '));
      sendError(ctx, new MethodNotAllowedError(ctx.method, [ ...allowed ]));
    } else {
      sendError(ctx, new NotFoundError('NO_SUCH_ROUTE', `no route ${ctx.method} ${ctx.path}`));
    }
  };
}

export function registerRoutes(app: Application, prefix: string): void {
  const r = app.router;
  const p = prefix;
  r.all(`${p}/(.*)`, fallback(app, p));

  registerPageRoutes(app, p);

  r.post(`${p}/upload`, route(async ctx => {
    if (!ctx.is('multipart')) {
      throw new BadRequestError('NOT_MULTIPART', 'send multipart/form-data with the file in the field "file"');
    }
    await ctx.sonofs.user(); // 401 before reading a byte of the body
    const max = app.config.sonofs.maxFileSize;
    // Refuse before reading a byte when the body alone is too large.
    if (ctx.request.length > max + 1024 * 1024) throw Object.assign(new Error(`file exceeds the maximum size of ${max} bytes`), { status: 413 });
    let result;
    let parts: AsyncIterator<any>;
    try {
      parts = pluginParts(ctx);
    } catch (err) {
      // e.g. a multipart Content-Type without a boundary
      throw new BadRequestError('MALFORMED_MULTIPART', `multipart body could not be parsed: ${(err as Error).message}`);
    }
    for (;;) {
      const { value: part, done } = await nextPart(parts);
      if (done) break;
      if (Array.isArray(part)) continue;
      if (part.fieldname !== 'file' || result) {
        part.resume();
        continue;
      }
      result = await ctx.sonofs.upload(part);
    }
    if (!result) throw new BadRequestError('MISSING_FILE', 'multipart field "file" with a file is required');
    if (!wantsJson(ctx)) return ctx.redirect(`${p}/upload/suc`);
    ctx.body = {
      code: 0,
      msg: 'OK',
      data: {
        FileSha1: result.fileHash,
        FileName: result.filename,
        FileSize: result.size,
        FileId: result.fileId,
        Location: `${p}/download?fileid=${result.fileId}`,
        UploadAt: courseTime(result.uploadAt),
        Mime: result.mime,
      },
    };
  }));

  r.get(`${p}/upload/suc`, route(async ctx => {
    ctx.type = 'text';
    ctx.body = 'Upload finished!';
  }));

  // The course's gin router takes /file/meta by GET and POST.
  const meta = route(async ctx => {
    ctx.body = fileMeta(p, await requireUserFile(ctx, param(ctx, 'filehash')));
  });
  r.get(`${p}/meta`, meta);
  r.post(`${p}/meta`, meta);

  const query = route(async ctx => {
    const raw = param(ctx, 'limit');
    const limit = raw === undefined || raw === '' ? 10 : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new BadRequestError('INVALID_LIMIT', 'limit must be an integer from 1 to 1000');
    }
    ctx.body = (await ctx.sonofs.list(limit)).map(f => fileMeta(p, f));
  });
  r.get(`${p}/query`, query);
  r.post(`${p}/query`, query);

  const download = route(async ctx => {
    const fileId = param(ctx, 'fileid');
    const fileHash = param(ctx, 'filehash');
    if (fileId === undefined && fileHash === undefined) throw new BadRequestError('MISSING_PARAM', 'give fileid or filehash');
    const link = fileId === undefined ? await requireUserFile(ctx, fileHash) : undefined;
    const id = fileId ?? link!.fileId;
    // a file of a group peer: from this node's copy, when it holds a good one
    const from: FileSource = await replicaCopy(ctx, id) ?? ctx.sonofs;
    // A small file comes with its stat from one positioned read.
    const small = ctx.method === 'GET' && !ctx.get('Range') && decodeFileId(id).size <= SMALL_FILE;
    const file = small ? await from.getFile(id) : undefined;
    const st: FileStat = file ?? await from.stat(id);
    const name = link?.name ?? await downloadName(ctx, st);
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
  });
  r.get(`${p}/download`, download); // the router answers HEAD from GET routes

  r.all(`${p}/update`, route(async ctx => {
    // The course checks op first (403), then the method (405).
    if (param(ctx, 'op') !== '0') throw new ForbiddenError('UNSUPPORTED_OP', 'only op=0 (rename) is supported');
    if (ctx.method !== 'POST') {
      ctx.set('Allow', 'POST');
      throw new MethodNotAllowedError(ctx.method, [ 'POST' ]);
    }
    const filename = param(ctx, 'filename');
    if (!filename) throw new BadRequestError('MISSING_PARAM', 'filename is required');
    ctx.body = fileMeta(p, await ctx.sonofs.rename(checkSha1(param(ctx, 'filehash')), filename));
  }));

  const remove = route(async ctx => {
    await ctx.sonofs.remove(checkSha1(param(ctx, 'filehash')));
    ctx.body = { code: 0, msg: 'OK' };
  });
  // The course deletes by GET too; an app whose users sign in by cookie turns that off (stateChangingGet).
  if (app.config.sonofs.stateChangingGet) r.get(`${p}/delete`, remove);
  r.post(`${p}/delete`, remove);
}
