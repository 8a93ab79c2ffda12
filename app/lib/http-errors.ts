import type { Context } from 'egg';
import { SonofsError } from '../../lib';

/** Codes for errors raised by egg-multipart / busboy, which carry only a status. */
const FOREIGN_CODES: Record<string, string> = {
  Request_fileSize_limit: 'FILE_TOO_LARGE',
  Request_fieldSize_limit: 'FIELD_TOO_LARGE',
  Request_files_limit: 'TOO_MANY_FILES',
  Request_fields_limit: 'TOO_MANY_FIELDS',
};

/**
 * The one place errors become responses: `{ code, msg }` with the error's
 * status. Client errors say what was wrong; anything else is logged and
 * answered 500 without internals.
 */
export function sendError(ctx: Context, err: unknown): void {
  const e = err as Error & { status?: number; code?: string; expose?: boolean };
  let status = 500;
  let code = 'INTERNAL_ERROR';
  let msg = 'internal error';
  if (e instanceof SonofsError) {
    ({ status, code } = e);
    msg = e.message;
  } else if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    status = e.status;
    code = FOREIGN_CODES[e.code ?? ''] ?? (status === 413 ? 'FILE_TOO_LARGE' : 'BAD_REQUEST');
    msg = e.message;
  }
  if (status >= 500) ctx.logger.error(e);
  const retryAfter = (e as { retryAfter?: unknown })?.retryAfter;
  if (typeof retryAfter === 'number') ctx.set('Retry-After', String(retryAfter));
  if (status === 413) ctx.set('Connection', 'close');
  ctx.status = status;
  ctx.body = { code, msg };
}

export type Handler = (ctx: Context) => Promise<void>;

/** Wraps route handlers so any error they throw is answered by `send` (each API has its own error shape). */
export function answeringErrorsWith(send: (ctx: Context, err: unknown) => void): (fn: Handler) => Handler {
  return fn => async ctx => {
    try {
      await fn(ctx);
    } catch (err) {
      send(ctx, err);
    }
  };
}
