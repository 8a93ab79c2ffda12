import { createHash } from 'node:crypto';
import type { Application, Context } from 'egg';
import type { Session, WriteOutcome } from '../../lib';
import { MetadataUnavailableError, SonofsError, checkName } from '../../lib';
import {
  FuploadConfig, FuploadServer, TaskExtra, queueNotification, taskExtra, taskStatus,
} from '../../lib/fupload';
import { FUPLOAD_ACTIONS } from './fupload-agent';
import { answeringErrorsWith } from './http-errors';
import { pluginParts } from './multipart';
import { forwardToUploadOwner, placeNewUpload, publicBase } from './session-forward';

/**
 * fuploadServer's task API on the upload-session engine: a business server
 * creates a task (token from config), the client sends md5-checked blocks of
 * byte ranges in any order, and when the last one is in the file is checked
 * against its md5, stored for the task's user, and the business server is
 * called back (by the agent, with retries). Block, state and info calls take
 * the task id as a capability, as fuploadServer does: it is 128 random bits.
 *
 * Every answer is `{ retCode, status, data }` as fuploadServer's; errors use
 * its retCodes with a real HTTP status.
 */

/** fuploadServer's retCodes. */
export const RET = {
  OK: '0',
  NOT_AUTHORIZED: '1',
  NO_TASK: '2',
  PAUSED: '4',
  SAME_STATE: '5',
  PARAM: '6',
  PART_MD5: '7',
  PART_INDEX: '8',
  SYSTEM: '20',
} as const;

/** An error answered with a fuploadServer retCode. */
export class TaskError extends SonofsError {
  constructor(status: number, code: string, readonly retCode: string, message: string) {
    super(status, code, message);
  }
}

const paramError = (msg: string, status = 400) => new TaskError(status, 'INVALID_PARAM', RET.PARAM, `parameter error: ${msg}`);

/** Engine errors as fuploadServer retCodes. */
const BY_CODE: Record<string, string> = {
  UPLOAD_NOT_FOUND: RET.NO_TASK,
  UPLOAD_CANCELLED: RET.NO_TASK,
  UPLOAD_EXPIRED: RET.NO_TASK,
  UPLOAD_FINISHED: RET.NO_TASK,
  UPLOAD_PAUSED: RET.PAUSED,
  CHECKSUM_MISMATCH: RET.PART_MD5,
  SIZE_MISMATCH: RET.PART_INDEX,
  RANGE_OUTSIDE_FILE: RET.PART_INDEX,
  EXCEEDS_LENGTH: RET.PART_INDEX,
  INVALID_OFFSET: RET.PART_INDEX,
  UPLOAD_LOCKED: RET.SYSTEM,
};

export function sendTaskError(ctx: Context, err: unknown): void {
  const e = err as Error & { status?: number; code?: string };
  let status = 500;
  let retCode: string = RET.SYSTEM;
  let msg = 'unknown system error';
  if (e instanceof SonofsError || (typeof e?.status === 'number' && e.status >= 400 && e.status < 500)) {
    status = e.status!;
    msg = e.message;
    retCode = e instanceof TaskError ? e.retCode : BY_CODE[e.code ?? ''] ?? (status >= 500 ? RET.SYSTEM : RET.PARAM);
    // a 460 (tus checksum status) is a plain 400 here
    if (status === 460) status = 400;
  }
  if (status >= 500) ctx.logger.error(e);
  ctx.status = status;
  ctx.body = { retCode, status: msg, data: null };
}

/** Runs a handler; any error becomes the seed's `{ retCode, status, data }` with an HTTP status. */
const taskRoute = answeringErrorsWith(sendTaskError);

const ok = (ctx: Context, data: unknown) => {
  ctx.body = { retCode: RET.OK, status: 'ok', data };
};

/** A non-negative integer given as a JSON number or a numeric string (the seed's README sends strings). */
function integer(v: unknown, name: string, allowNegative = false): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d{1,19}$/.test(v.trim()) ? Number(v.trim()) : NaN;
  if (!Number.isSafeInteger(n) || (!allowNegative && n < 0)) throw paramError(`${name} must be ${allowNegative ? 'an' : 'a non-negative'} integer (number or numeric string)`);
  return n;
}

function string(v: unknown, name: string, max: number): string {
  if (typeof v !== 'string' || !v) throw paramError(`${name} is required`);
  if (v.length > max) throw paramError(`${name} is longer than ${max} characters`);
  return v;
}

/** The task for a capability id; other protocols' sessions are unknown here. */
async function getTask(ctx: Context, id: unknown): Promise<Session> {
  if (typeof id !== 'string' || !id) throw paramError('taskId is required');
  const s = await ctx.app.sonofsUploads.get(id);
  if (s.protocol !== 'task') throw new TaskError(404, 'UPLOAD_NOT_FOUND', RET.NO_TASK, 'can not find task');
  return s;
}

/** Missing bytes as fuploadServer's inclusive ranges. */
function expectBlocks(ctx: Context, s: Session) {
  if (s.state === 'done') return [];
  return ctx.app.sonofsUploads.missing(s).map(r => ({ startByte: r.start, endByte: r.end - 1 }));
}

/**
 * Stores a task whose bytes are all in: md5 checked in the same read as the
 * sha1, then an ordinary file for the task's user; on an md5 mismatch the task
 * is cancelled. Either way the callback is queued for the agent. Idempotent.
 *
 * Every attempt is counted in the task, under its lock (a worker still storing
 * it holds the lock: whoever finds it busy gets a 423 and counts nothing).
 * When the `finishAttempts`th attempt fails, or one comes after it (the last
 * one's worker died), the task fails: callback "-1" `store error`, bytes
 * given back. A task whose failure is already queued is only cancelled.
 */
export async function finishTask(app: Application, id: string): Promise<void> {
  const uploads = app.sonofsUploads;
  const s = await uploads.db.get(id);
  if (!s || s.protocol !== 'task') return;
  if (s.state === 'active' || s.state === 'paused') {
    if (uploads.missing(s).length) return;
    const x = taskExtra(s);
    if (x.notify && x.notify.retCode !== '0') {
      // failed already (md5 error, store error); what is left is giving the bytes back
      await cancelTask(app, id);
    } else {
      await storeTask(app, id, x);
    }
  }
  app.messenger.sendToAgent(FUPLOAD_ACTIONS.notify, { id });
}

async function storeTask(app: Application, id: string, x: TaskExtra): Promise<void> {
  const uploads = app.sonofsUploads;
  const limit = app.config.sonofs.fupload.finishAttempts;
  // queued first: if this process dies while storing, the agent hands the task to a worker again
  await queueNotification(uploads.db, id, { retCode: '0', status: 'ok' });
  const counted = await uploads.update(id, undefined, cur => cur.state === 'done' ? cur : {
    ...cur, extra: { ...cur.extra, finishAttempts: (taskExtra(cur).finishAttempts ?? 0) + 1 },
  });
  if (counted.state === 'done') return;
  const attempt = taskExtra(counted).finishAttempts!;
  if (attempt > limit) {
    return failTask(app, id, attempt - 1, taskExtra(counted).finishError ?? 'the last attempt did not finish (its worker died?)');
  }
  try {
    await uploads.complete(id, { filename: x.fileName, expectDigest: { algorithm: 'md5', digest: Buffer.from(x.fileMd5, 'hex') } });
  } catch (err) {
    const e = (err ?? {}) as SonofsError;
    if (e.code === 'FILE_HASH_MISMATCH') {
      await queueNotification(uploads.db, id, { retCode: '-2', status: 'md5 error' }, true);
      return cancelTask(app, id);
    }
    if (e.status === 423) throw err; // another request holds the task (storing it): not this attempt's failure
    if (err instanceof MetadataUnavailableError) {
      // the shared catalog away is the cluster's outage, not the task's failure: the attempt is not counted
      await uploads.db.update(id, cur => ({ ...cur, extra: { ...cur.extra, finishAttempts: Math.max(0, (taskExtra(cur).finishAttempts ?? 1) - 1) } }));
      throw err;
    }
    const reason = e.message || String(err);
    await uploads.db.update(id, cur => ({ ...cur, extra: { ...cur.extra, finishError: reason } }));
    if (attempt >= limit) return failTask(app, id, attempt, reason);
    throw err; // the agent hands the task to a worker again after finishRetryAfter
  }
}

/** The file could not be stored: the business server gets "-1" `store error`, the bytes go back. */
async function failTask(app: Application, id: string, attempts: number, reason: string): Promise<void> {
  app.coreLogger.warn('[egg-sonofs] fupload task %s could not be stored in %d attempts (last: %s); the task failed (callback "-1")', id, attempts, reason);
  await queueNotification(app.sonofsUploads.db, id, { retCode: '-1', status: 'store error' }, true);
  await cancelTask(app, id);
}

/** Gives a failed task's bytes back; one already cancelled, or stored meanwhile (its "ok" stands), is left. */
async function cancelTask(app: Application, id: string): Promise<void> {
  await app.sonofsUploads.cancel(id).catch(e => {
    if (![ 409, 410 ].includes((e as SonofsError).status)) throw e;
  });
}

export function fuploadEnabled(cfg: FuploadConfig | undefined): boolean {
  return !!cfg && (cfg.enabled || Object.keys(cfg.servers ?? {}).length > 0);
}

export function registerFuploadRoutes(app: Application): void {
  const cfg = app.config.sonofs.fupload;
  if (!fuploadEnabled(cfg)) return;
  const r = app.router;
  const p = cfg.prefix;
  const uploads = () => app.sonofsUploads;

  // Agent → one worker: finish a task whose worker did not (it died or failed while storing it).
  app.messenger.on(FUPLOAD_ACTIONS.finish, ({ id }: { id: string }) => {
    finishTask(app, id).catch(err => {
      // a request still storing it holds its lock: this one waited and gave up (not counted as an attempt)
      if ((err as SonofsError).status === 423) app.coreLogger.info('[egg-sonofs] fupload task %s is being stored by another request', id);
      else app.coreLogger.error(err);
    });
  });

  r.post(`${p}/new/task`, taskRoute(async ctx => {
    const b = (ctx.request as any).body;
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw paramError('send a JSON object');
    const token = typeof b.token === 'string' ? b.token : '';
    const server: FuploadServer | undefined = Object.prototype.hasOwnProperty.call(cfg.servers, token) ? cfg.servers[token] : undefined;
    if (!token || !server) throw new TaskError(403, 'NOT_AUTHORIZED', RET.NOT_AUTHORIZED, 'not authorized');
    const userId = integer(b.userId, 'userId', true);
    const fileSize = integer(b.fileSize, 'fileSize');
    if (fileSize > app.config.sonofs.maxFileSize) throw paramError(`fileSize exceeds the maximum of ${app.config.sonofs.maxFileSize} bytes`, 413);
    const fileMd5 = string(b.fileMd5, 'fileMd5', 32).toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(fileMd5)) throw paramError('fileMd5 must be 32 hex digits');
    let fileName: string;
    try {
      fileName = checkName(string(b.fileName, 'fileName', 4096));
    } catch (err) {
      throw err instanceof TaskError ? err : paramError((err as Error).message);
    }
    const storePath = b.storePath === undefined ? '' : b.storePath;
    if (typeof storePath !== 'string' || storePath.length > 4096) throw paramError('storePath must be a string of at most 4096 characters');
    // Go's decoder matched the field case-insensitively; both spellings are taken
    const feedBackParameter = b.feedBackParameter ?? b.feedbackParameter ?? '';

    if (await placeNewUpload(ctx, fileSize)) return; // cluster mode: created in the group placement picks
    // Resume: the same server, user, content and size get the same task back.
    const user = String(userId);
    const tokenTag = createHash('sha256').update(token).digest('hex').slice(0, 16);
    const key = `task:${tokenTag}:${user}:${fileMd5}:${fileSize}`;
    let s: Session | undefined;
    const existing = await uploads().findByKey(key);
    if (existing) s = await uploads().get(existing).catch(() => undefined);
    if (!s || s.protocol !== 'task' || (s.state !== 'active' && s.state !== 'paused')) {
      const extra: TaskExtra = {
        server: server.name, notifyUrl: server.notifyUrl, userId: b.userId, storePath, fileName, fileMd5, feedBackParameter,
      };
      s = await uploads().create({ protocol: 'task', user, length: fileSize, filename: fileName, key, extra: { ...extra } });
      // nothing to send for an empty file: it is complete now
      if (fileSize === 0) await finishTask(app, s.id);
    }
    const base = `${publicBase(ctx)}${p}`;
    const id = encodeURIComponent(s.id);
    ok(ctx, {
      taskId: s.id,
      uploadUrl: `${base}/files/block?taskId=${id}`,
      blocksUrl: `${base}/files/blocks/info?taskId=${id}`,
      stateUrl: `${base}/files/state`,
    });
  }));

  r.post(`${p}/files/block`, taskRoute(async ctx => {
    // the task's bytes are on another node: streamed there
    if (typeof ctx.query.taskId === 'string' && await forwardToUploadOwner(ctx, ctx.query.taskId)) return;
    const s = await getTask(ctx, ctx.query.taskId).catch(err => {
      // a cancelled task refuses blocks like a paused one
      if ((err as SonofsError).code === 'UPLOAD_CANCELLED') throw new TaskError(410, 'UPLOAD_CANCELLED', RET.PAUSED, 'task was cancel');
      throw err;
    });
    if (s.state === 'paused') throw new TaskError(409, 'UPLOAD_PAUSED', RET.PAUSED, 'task was pause');
    if (s.state === 'done') throw new TaskError(409, 'UPLOAD_FINISHED', RET.NO_TASK, 'task is already finished');
    if (!ctx.is('multipart')) throw paramError('send multipart/form-data with partMd5, startByte, endByte, then file');
    let parts: AsyncIterator<any>;
    try {
      parts = pluginParts(ctx);
    } catch (err) {
      throw paramError(`multipart body could not be parsed: ${(err as Error).message}`);
    }
    const fields: Record<string, string> = {};
    let out: WriteOutcome | undefined;
    for (;;) {
      let next: IteratorResult<any>;
      try {
        next = await parts.next();
      } catch (err) {
        if (err instanceof SonofsError) throw err;
        throw paramError(`multipart body could not be parsed: ${(err as Error).message}`);
      }
      if (next.done) break;
      const part = next.value;
      if (Array.isArray(part)) {
        fields[part[0]] = part[1];
        continue;
      }
      if (part.fieldname !== 'file' || out) {
        part.resume();
        continue;
      }
      out = await writeBlock(ctx, s, fields, part);
    }
    if (!out) throw paramError('the multipart field "file" is required');
    let latest = out.session;
    if (!uploads().missing(latest).length) {
      // The block is stored whatever happens here; if storing the file fails, the agent asks a worker again later.
      await finishTask(app, s.id).catch(err => ctx.logger.error(err));
      latest = (await uploads().db.get(s.id)) ?? latest;
    }
    ok(ctx, { expectBlocks: expectBlocks(ctx, latest), status: taskStatus(latest) });
  }));

  const info = taskRoute(async ctx => {
    const s = await getTask(ctx, ctx.query.taskId);
    ok(ctx, { totalSize: s.length, status: taskStatus(s), expectBlocks: expectBlocks(ctx, s) });
  });
  r.get(`${p}/files/blocks/info`, info);

  r.post(`${p}/files/state`, taskRoute(async ctx => {
    const b = (ctx.request as any).body ?? {};
    const want = b.status;
    if (![ 'pause', 'upload', 'cancel' ].includes(want)) throw paramError('status must be "pause", "upload" or "cancel"');
    const s = await getTask(ctx, b.taskId ?? ctx.query.taskId);
    if (s.state === 'done') throw new TaskError(409, 'UPLOAD_FINISHED', RET.NO_TASK, 'task is already finished');
    if (want === taskStatus(s)) throw new TaskError(409, 'SAME_STATE', RET.SAME_STATE, 'same as the old state');
    if (want === 'cancel') {
      await uploads().cancel(s.id);
    } else {
      await uploads().update(s.id, undefined, cur => ({ ...cur, state: want === 'pause' ? 'paused' : 'active' }));
    }
    ok(ctx, { taskId: s.id, status: want });
  }));
}

/** Checks a block's fields, then streams its bytes into place, md5-verified. */
async function writeBlock(ctx: Context, s: Session, fields: Record<string, string>, part: any): Promise<WriteOutcome> {
  try {
    const missing = [ 'partMd5', 'startByte', 'endByte' ].filter(f => fields[f] === undefined);
    if (missing.length) throw paramError(`${missing.join(', ')} must come before the file part`);
    const start = integer(fields.startByte, 'startByte');
    const end = integer(fields.endByte, 'endByte');
    if (start > end || end >= s.length!) {
      throw new TaskError(400, 'RANGE_OUTSIDE_FILE', RET.PART_INDEX, `temp part index error: need startByte <= endByte < ${s.length}`);
    }
    const md5 = fields.partMd5.toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(md5)) throw paramError('partMd5 must be 32 hex digits');
    return await ctx.app.sonofsUploads.write(s.id, {
      at: start, length: end - start + 1, source: part, checksum: { algorithm: 'md5', digest: Buffer.from(md5, 'hex') },
    });
  } catch (err) {
    part.resume();
    const code = (err as SonofsError).code;
    if (code === 'CHECKSUM_MISMATCH') throw new TaskError(400, code, RET.PART_MD5, 'temp part md5 error');
    if (code === 'SIZE_MISMATCH') throw new TaskError(400, code, RET.PART_INDEX, `temp part index error: ${(err as Error).message}`);
    throw err;
  }
}
