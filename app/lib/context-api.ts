import type { Context } from 'egg';
import type { Readable } from 'node:stream';
import type { FileStat, ReadRange, SonofsStore, StoredFile, UploadResult, UserFile } from '../../lib';
import { checkSha1, UnauthorizedError, UploadAbortedError } from '../../lib';
import { sourceOf } from './file-sources';
import { uploadPlacement } from './upload-placement';

export interface CtxUploadOptions {
  filename?: string;
  mime?: string;
  /** exact size, if known */
  size?: number;
  /** store on this node whatever cluster placement says (tus keeps its uploads on the node of their session) */
  here?: boolean;
}

/** A multipart file stream as egg-multipart hands it out. */
interface PartLike {
  fieldname?: string;
  filename?: string;
  mimeType?: string;
  mime?: string;
}

/**
 * Asks the app's hook who is calling. A number (a database id) counts as its
 * decimal string. A refusal is logged with its reason, since the client only
 * sees 401; an error the hook throws with a 4xx status (ctx.throw(403)) is
 * answered as it is.
 */
async function userOf(ctx: Context, quiet = false): Promise<string> {
  const hook = ctx.app.config.sonofs.authenticate ?? (() => 'anonymous');
  const refuse = (why: string, ...args: unknown[]) => {
    if (!quiet) ctx.logger.warn(`[egg-sonofs] %s %s refused: config.sonofs.authenticate ${why}`, ctx.method, ctx.path, ...args);
    return new UnauthorizedError();
  };
  let id: unknown;
  try {
    id = await hook(ctx);
  } catch (err) {
    const e = err as Error & { status?: number };
    const refused = refuse('threw %s', e?.message ?? e);
    if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) throw err;
    throw refused;
  }
  // A number past 2^53 has lost digits already: two users could become one.
  if (typeof id === 'number' && !Number.isSafeInteger(id)) throw refuse('returned %s, not a safe integer: return ids this large as strings', id);
  if (typeof id === 'number' || typeof id === 'bigint') id = String(id);
  if (typeof id !== 'string' || !id) {
    throw refuse('returned %s (want a non-empty string or an integer)', typeof id === 'string' ? 'an empty string' : String(id));
  }
  return id;
}

/**
 * `ctx.sonofs`: the store seen by the request's user (from the configured
 * authenticate hook). Cached per request.
 */
export class SonofsContext {
  private userId: Promise<string> | undefined;

  constructor(private readonly ctx: Context, private readonly store: SonofsStore) {}

  /** The request's user id, from config.sonofs.authenticate (called once per request). */
  user(): Promise<string> {
    this.userId ??= userOf(this.ctx);
    return this.userId;
  }

  /** The request's user if the hook names one, without answering 401 or logging a refusal (an anonymous download). */
  async userIfAny(): Promise<string | undefined> {
    this.userId ??= userOf(this.ctx, true);
    return this.userId.catch(() => undefined);
  }

  /**
   * Stores a stream. Takes an egg-multipart file stream (name and type are
   * read from it) or any Readable with `{ filename, mime }`; the sonofs form
   * `upload(mime, stream)` works too.
   * @example const { fileId } = await ctx.sonofs.upload(await ctx.getFileStream());
   */
  upload(stream: Readable, opts?: CtxUploadOptions): Promise<UploadResult>;
  upload(mime: string, stream: Readable): Promise<UploadResult>;
  async upload(a: Readable | string, b?: Readable | CtxUploadOptions): Promise<UploadResult> {
    const [ stream, opts ] = typeof a === 'string' ? [ b as Readable, { mime: a } ] : [ a, (b ?? {}) as CtxUploadOptions ];
    const part = stream as Readable & PartLike;
    const user = await this.user();
    const fromBody = part.fieldname !== undefined || stream === this.ctx.req;
    // A part of this request's body can be no longer than the body itself:
    // that bound lets the store reserve space without buffering.
    const sizeBound = fromBody && this.ctx.request.length ? this.ctx.request.length : undefined;
    // busboy leaves a file stream hanging when the client disconnects; end it
    // so the upload fails (and gives its space back) instead of waiting forever.
    const req = this.ctx.req;
    const onClose = () => {
      if (!req.complete) stream.destroy(new UploadAbortedError());
    };
    if (fromBody) req.once('close', onClose);
    try {
      const spec = { user, filename: opts.filename ?? part.filename, mime: opts.mime ?? part.mimeType ?? part.mime, size: opts.size, sizeBound };
      // cluster mode: the group placement picks (this one, or another whose member gets the bytes streamed)
      const placement = opts.here ? undefined : uploadPlacement(this.ctx.app);
      const targets = await placement?.targets(opts.size ?? sizeBound ?? 0).catch(err => {
        stream.resume();
        throw err;
      });
      if (targets) return await placement!.forward(targets, stream, spec);
      return await this.store.upload(stream, spec);
    } finally {
      if (fromBody) req.off('close', onClose);
    }
  }

  /** `{ mime, size, buffer }` of a stored file, as sonofs's getFile. */
  async getFile(fileId: string): Promise<StoredFile & FileStat> {
    return (await sourceOf(this.ctx, fileId)).getFile(fileId);
  }

  /** Streams a file, or the inclusive byte range [start, end] of it. */
  async createReadStream(fileId: string, range?: ReadRange): Promise<Readable> {
    return (await sourceOf(this.ctx, fileId)).createReadStream(fileId, range);
  }

  async stat(fileId: string): Promise<FileStat> {
    return (await sourceOf(this.ctx, fileId)).stat(fileId);
  }

  /** The user's file with this content hash, or undefined. */
  async meta(fileHash: string): Promise<UserFile | undefined> {
    return this.store.getUserFile(await this.user(), checkSha1(fileHash));
  }

  /** The user's files, newest first. */
  async list(limit = 10): Promise<UserFile[]> {
    return this.store.listUserFiles(await this.user(), limit);
  }

  async rename(fileHash: string, filename: string): Promise<UserFile> {
    return this.store.rename(await this.user(), checkSha1(fileHash), filename);
  }

  /** Removes the user's link; other users keep theirs. */
  async remove(fileHash: string): Promise<{ contentGone: boolean }> {
    return this.store.remove(await this.user(), checkSha1(fileHash));
  }

  /** Adds a link to content already stored (秒传); 404 when the store lacks it. */
  async link(fileHash: string, filename: string): Promise<UserFile> {
    return this.store.link(await this.user(), checkSha1(fileHash), filename);
  }
}
