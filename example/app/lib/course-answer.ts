import type { Context } from 'egg';
import { SonofsError } from '../../../lib';

/**
 * The course's `{code, msg, data}` answers for /user/*, with a real HTTP
 * status on failure and the stable string code as `error`, as the plugin's
 * chunked-upload routes answer: `{"code":-2,"msg":"signup failed: …","data":null,"error":"USER_EXISTS"}`.
 */

/** Course codes (the gin edition's ad-hoc ones, StatusTokenInvalid and StatusServerError of common/code.go). */
const COURSE_CODES: Record<string, number> = {
  INVALID_PARAM: -1,
  LOGIN_FAILED: -1,
  METHOD_NOT_ALLOWED: -1,
  USER_EXISTS: -2,
  UNAUTHORIZED: 10005,
  INTERNAL_ERROR: 10002,
};

/** "2006-01-02 15:04:05" in local time, the course's time format. */
export function courseTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Runs a handler that returns `{ msg, data }`; answers code 0 with it, or the error. */
export async function courseAnswer(ctx: Context, fn: () => Promise<{ msg: string; data: unknown }>): Promise<void> {
  try {
    const { msg, data } = await fn();
    ctx.body = { code: 0, msg, data };
  } catch (err) {
    let status = 500;
    let error = 'INTERNAL_ERROR';
    let msg = 'internal error';
    if (err instanceof SonofsError && err.status < 500) {
      ({ status, code: error, message: msg } = err);
    } else {
      ctx.logger.error(err);
    }
    ctx.status = status;
    ctx.body = { code: COURSE_CODES[error] ?? -1, msg, data: null, error };
  }
}
