import type { Application, Context } from 'egg';
import type { UserFile } from '../../lib';
import {
  BadRequestError, ForbiddenError, MetadataUnavailableError, MethodNotAllowedError, NotFoundError, SonofsError, checkSha1, decodeFileId,
} from '../../lib';
import { idName, sendStoredFile } from './file-response';
import { answeringErrorsWith, sendError } from './http-errors';
import { copiesOf, setCopies } from './copies';
import { remoteReads } from './remote-reads';
import { replicaCopy } from './replication-routes';
import { registerPageRoutes } from './page/routes';
import { pluginParts } from './multipart';

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
 * While the shared catalog is unreachable the file keeps its id name.
 */
async function ownName(ctx: Context, sha1: string): Promise<string | undefined> {
  const user = await ctx.sonofs.userIfAny();
  if (user === undefined) return undefined;
  try {
    return (await ctx.app.sonofs.getUserFile(user, sha1))?.name;
  } catch (err) {
    if (err instanceof MetadataUnavailableError) return undefined;
    throw err;
  }
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
    setCopies(ctx, result);
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
        ...copiesOf(result),
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

  // another node's file id: read from that node in cluster mode, a 404 in embedded mode
  const remote = remoteReads(app, p);
  const download = route(async ctx => {
    const fileId = param(ctx, 'fileid');
    const fileHash = param(ctx, 'filehash');
    if (fileId === undefined && fileHash === undefined) throw new BadRequestError('MISSING_PARAM', 'give fileid or filehash');
    const link = fileId === undefined ? await requireUserFile(ctx, fileHash) : undefined;
    const id = fileId ?? link!.fileId;
    const loc = decodeFileId(id);
    // a file of a group peer: from this node's copy when it holds a good one, else from a node that has it
    const copy = app.sonofs.holds(loc) ? undefined : await replicaCopy(ctx, id);
    if (remote && !copy && !app.sonofs.holds(loc)) {
      await remote.answer(ctx, id, loc, async sha1 => link?.name ?? ownName(ctx, sha1));
      return;
    }
    await sendStoredFile(ctx, id, async st => link?.name ?? await ownName(ctx, st.fileHash) ?? idName(st), copy);
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
