import type { Application, Context } from 'egg';
import type { Session, UploadResult, UserFile } from '../../lib';
import { SonofsError, checkSha1, covers } from '../../lib';
import { answeringErrorsWith } from './http-errors';
import { copiesOf, setCopies } from './copies';
import { forwardToUploadOwner, placeNewUpload } from './session-forward';

/**
 * The course's 秒传 (/file/fastupload) and chunked upload (/file/mpupload/*),
 * on the upload-session engine. Field names and the `{code, msg, data}`
 * envelope are the course's, so its clients work unchanged; what the course
 * got wrong is fixed: an upload id belongs to its user, indexes are checked,
 * an unknown id is an error (never "0 of 0 chunks: complete"), chunks and the
 * whole file are verified, and nothing is a path or a shell command.
 *
 * Errors keep the course's code in the body and get a real HTTP status:
 * 400 bad parameters, 401 no user, 404 unknown upload id, 409 incomplete or
 * already existing, 410 cancelled or expired, 413 too large.
 */

/** The course's fixed chunk size: 5 MiB. */
export const CHUNK_SIZE = 5 * 1024 * 1024;

/** Course codes in the body (common/code.go and the handlers' ad-hoc ones). */
export const COURSE_CODES = {
  OK: 0,
  /** bad parameters, unknown upload, fast upload missed */
  FAILED: -1,
  /** a chunk's hash did not verify; chunks missing at complete */
  CHUNK: -2,
  /** the whole file's sha1 is not filehash */
  MERGE: -3,
  /** StatusServerError */
  SERVER: 10002,
  /** StatusTokenInvalid: the authenticate hook refused */
  TOKEN: 10005,
  /** FileAlreadExists (sic in the course) */
  EXISTS: 10006,
} as const;

/** An error answered with a course code, beside the stable string code of the rest of the API. */
export class CourseError extends SonofsError {
  constructor(status: number, code: string, readonly course: number, message: string, readonly data: unknown = null) {
    super(status, code, message);
  }
}

const invalid = (message: string) => new CourseError(400, 'INVALID_PARAM', COURSE_CODES.FAILED, `params invalid: ${message}`);

/** Runs a handler; any error becomes `{ code, msg, data, error }` with its HTTP status. */
const courseRoute = answeringErrorsWith(sendCourseError);

export function sendCourseError(ctx: Context, err: unknown): void {
  const e = err as Error & { status?: number; code?: string };
  let status = 500;
  let course: number = COURSE_CODES.SERVER;
  let error = 'INTERNAL_ERROR';
  let msg = 'internal error';
  let data: unknown = null;
  if (e instanceof CourseError) {
    ({ status, course, data } = e);
    error = e.code;
    msg = e.message;
  } else if (e instanceof SonofsError || (typeof e?.status === 'number' && e.status >= 400 && e.status < 500)) {
    status = e.status!;
    error = e instanceof SonofsError ? e.code : 'BAD_REQUEST';
    msg = e.message;
    course = status === 401 ? COURSE_CODES.TOKEN : status >= 500 ? COURSE_CODES.SERVER : COURSE_CODES.FAILED;
  }
  if (status >= 500) ctx.logger.error(e);
  ctx.status = status;
  ctx.body = { code: course, msg, data, error };
}

/** A parameter from the query string or a urlencoded form, as the course's r.FormValue. */
function param(ctx: Context, name: string): string | undefined {
  const body = (ctx.request as any).body;
  const v = ctx.query[name] ?? (body && typeof body === 'object' ? body[name] : undefined);
  return typeof v === 'string' ? v : undefined;
}

function required(ctx: Context, name: string): string {
  const v = param(ctx, name);
  if (!v) throw invalid(`${name} is required`);
  return v;
}

function hashParam(ctx: Context, name = 'filehash'): string {
  try {
    return checkSha1(param(ctx, name), name);
  } catch (err) {
    throw invalid((err as Error).message);
  }
}

function intParam(ctx: Context, name: string): number {
  const raw = required(ctx, name);
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n)) throw invalid(`${name} must be a non-negative integer`);
  return n;
}

/** "2006-01-02 15:04:05" in local time, the course's UploadAt format. */
function courseTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The course's FileMeta (plus FileId and Mime), as /file/meta answers it. */
function fileMeta(prefix: string, f: UserFile | UploadResult) {
  const u = 'sha1' in f
    ? { sha1: f.sha1, name: f.name, at: f.at }
    : { sha1: f.fileHash, name: f.filename, at: f.uploadAt };
  return {
    FileSha1: u.sha1, FileName: u.name, FileSize: f.size, Location: `${prefix}/download?fileid=${f.fileId}`,
    UploadAt: courseTime(u.at), FileId: f.fileId, Mime: f.mime, ...('copies' in f ? copiesOf(f) : {}),
  };
}

interface ChunkedExtra {
  filehash: string;
  chunkSize: number;
  chunkCount: number;
}

const extraOf = (s: Session) => s.extra as ChunkedExtra;

/** Chunk `index` (1-based) as a byte range [start, end). */
function chunkRange(s: Session, index: number): { start: number; end: number } {
  const { chunkSize } = extraOf(s);
  const start = (index - 1) * chunkSize;
  return { start, end: Math.min(start + chunkSize, s.length!) };
}

/** 1-based indexes of the chunks received (present: true) or not yet (false). */
function chunks(s: Session, present: boolean): number[] {
  const out: number[] = [];
  for (let i = 1; i <= extraOf(s).chunkCount; i++) {
    const r = chunkRange(s, i);
    if ((s.state === 'done' || covers(s.ranges, r.start, r.end)) === present) out.push(i);
  }
  return out;
}

/** The user's chunked upload with this id; anything else (another user's, a tus upload) is unknown. */
async function getUpload(ctx: Context, user: string): Promise<Session> {
  const id = required(ctx, 'uploadid');
  const notFound = () => new CourseError(404, 'UPLOAD_NOT_FOUND', COURSE_CODES.FAILED, 'unknown uploadid');
  let s: Session;
  try {
    s = await ctx.app.sonofsUploads.get(id, user);
  } catch (err) {
    if ((err as SonofsError).status === 404) throw notFound();
    throw err;
  }
  if (s.protocol !== 'chunked') throw notFound();
  return s;
}

function uploadInfo(s: Session) {
  const x = extraOf(s);
  return {
    FileHash: x.filehash, FileSize: s.length, UploadID: s.id, ChunkSize: x.chunkSize, ChunkCount: x.chunkCount,
    ChunkExists: chunks(s, true),
  };
}

/**
 * Adds the routes under `prefix`. The chunk route's body is raw bytes under
 * any Content-Type, so it must be kept from the body parser (own-routes.ts).
 */
export function registerChunkedRoutes(app: Application, prefix: string): void {
  const r = app.router;
  const p = prefix;
  const ok = (ctx: Context, data: unknown, msg = 'OK') => {
    ctx.body = { code: COURSE_CODES.OK, msg, data };
  };

  // 秒传: the hash is taken as proof of the bytes only when the size matches too.
  r.post(`${p}/fastupload`, courseRoute(async ctx => {
    await ctx.sonofs.user(); // 401 before anything else
    const hash = hashParam(ctx);
    const size = intParam(ctx, 'filesize');
    const filename = required(ctx, 'filename');
    // A miss is an answer, not an error: the client falls back to a normal upload.
    const miss = () => {
      ctx.body = { code: COURSE_CODES.FAILED, msg: '秒传失败，请访问普通上传接口', data: null };
    };
    const blob = await app.sonofs.catalog.getBlob(hash);
    if (!blob || blob.refs < 1 || blob.size !== size) return miss();
    let link: UserFile;
    try {
      link = await ctx.sonofs.link(hash, filename);
    } catch (err) {
      // the last link went away since the lookup
      if ((err as SonofsError).status === 404) return miss();
      throw err;
    }
    ok(ctx, fileMeta(p, link), '秒传成功');
  }));

  r.post(`${p}/mpupload/init`, courseRoute(async ctx => {
    const user = await ctx.sonofs.user();
    const hash = hashParam(ctx);
    const size = intParam(ctx, 'filesize');
    if (await ctx.sonofs.meta(hash)) throw new CourseError(409, 'FILE_EXISTS', COURSE_CODES.EXISTS, 'file exists');
    if (await placeNewUpload(ctx, size)) return; // cluster mode: created in the group placement picks
    const uploads = app.sonofsUploads;
    // Resume: the same user, content and size get the same upload back.
    const key = `chunked:${user}:${hash}:${size}`;
    let s: Session | undefined;
    const existing = await uploads.findByKey(key);
    if (existing) s = await uploads.get(existing, user).catch(() => undefined);
    if (!s || s.protocol !== 'chunked' || s.state === 'done') {
      const extra: ChunkedExtra = { filehash: hash, chunkSize: CHUNK_SIZE, chunkCount: Math.ceil(size / CHUNK_SIZE) };
      s = await uploads.create({ protocol: 'chunked', user, length: size, key, extra: { ...extra } });
    }
    ok(ctx, uploadInfo(s));
  }));

  r.post(`${p}/mpupload/uppart`, courseRoute(async ctx => {
    const user = await ctx.sonofs.user();
    if (await forwardToUploadOwner(ctx, required(ctx, 'uploadid'))) return; // its bytes are on another node
    const s = await getUpload(ctx, user);
    const count = extraOf(s).chunkCount;
    const index = intParam(ctx, 'index');
    if (index < 1 || index > count) throw invalid(`index must be from 1 to ${count}`);
    const chk = param(ctx, 'chkhash') ? hashParam(ctx, 'chkhash') : undefined;
    if (s.state === 'done') throw new CourseError(409, 'UPLOAD_FINISHED', COURSE_CODES.FAILED, 'the upload is already complete');
    const { start, end } = chunkRange(s, index);
    const declared = ctx.get('Content-Length');
    if (declared && Number(declared) !== end - start) throw invalid(`chunk ${index} must be ${end - start} bytes, not ${declared}`);
    try {
      await app.sonofsUploads.write(s.id, {
        user, at: start, length: end - start, source: ctx.req,
        checksum: chk ? { algorithm: 'sha1', digest: Buffer.from(chk, 'hex') } : undefined,
      });
    } catch (err) {
      const code = (err as SonofsError).code;
      if (code === 'CHECKSUM_MISMATCH') throw new CourseError(400, code, COURSE_CODES.CHUNK, `Verify hash failed, chkIdx:${index}`);
      if (code === 'SIZE_MISMATCH') throw invalid(`chunk ${index} must be ${end - start} bytes`);
      throw err;
    }
    ok(ctx, null);
  }));

  r.post(`${p}/mpupload/complete`, courseRoute(async ctx => {
    const user = await ctx.sonofs.user();
    if (await forwardToUploadOwner(ctx, required(ctx, 'uploadid'))) return; // its bytes are on another node
    const s = await getUpload(ctx, user);
    const hash = hashParam(ctx);
    const size = intParam(ctx, 'filesize');
    const filename = required(ctx, 'filename');
    if (size !== s.length) throw invalid(`filesize is not the upload's size ${s.length}`);
    const incomplete = (missing: number[]) => new CourseError(409, 'UPLOAD_INCOMPLETE', COURSE_CODES.CHUNK,
      `分块不完整: chunks missing: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', ...' : ''}`, { ChunkMissing: missing });
    const missing = chunks(s, false);
    if (missing.length) throw incomplete(missing);
    let result: UploadResult;
    try {
      result = await app.sonofsUploads.complete(s.id, { user, filename, expectSha1: hash, expectSize: size });
    } catch (err) {
      const code = (err as SonofsError).code;
      if (code === 'FILE_HASH_MISMATCH') throw new CourseError(400, code, COURSE_CODES.MERGE, `合并失败: ${(err as Error).message}`);
      if (code === 'UPLOAD_INCOMPLETE') throw incomplete(chunks(await app.sonofsUploads.get(s.id, user), false));
      throw err;
    }
    setCopies(ctx, result);
    ok(ctx, fileMeta(p, result));
  }));

  r.post(`${p}/mpupload/cancel`, courseRoute(async ctx => {
    const user = await ctx.sonofs.user();
    if (await forwardToUploadOwner(ctx, required(ctx, 'uploadid'))) return; // its bytes are on another node
    const s = await getUpload(ctx, user);
    if (s.state === 'done') throw new CourseError(409, 'UPLOAD_FINISHED', COURSE_CODES.FAILED, 'the upload is already a stored file');
    await app.sonofsUploads.cancel(s.id, user);
    ok(ctx, null);
  }));

  // The course left status as a stub; this is what it meant to answer.
  r.post(`${p}/mpupload/status`, courseRoute(async ctx => {
    const user = await ctx.sonofs.user();
    const s = await getUpload(ctx, user);
    ok(ctx, { ...uploadInfo(s), State: s.state, ...(s.result ? { FileId: s.result.fileId } : {}) });
  }));
}
