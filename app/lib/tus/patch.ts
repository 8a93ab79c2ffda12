import { ConflictError, FileTooLargeError } from '../../../lib';
import { OFFSET_STREAM, mediaType, parseSize, tusErrors } from '../../../lib/tus';
import { bodyCheck, writeBody } from './body';
import { finishIfComplete } from './finish';
import { TusRequest, tusExtra } from './request';

/**
 * PATCH <path>/<id> (Core, creation-defer-length, checksum): every check
 * that can refuse the request runs before its body is read, so a refused
 * body is never stored (415, 400, 409, 413, 403, 404).
 */
export async function patchUpload(t: TusRequest, id: string): Promise<void> {
  if (mediaType(t.header('Content-Type')) !== OFFSET_STREAM) throw tusErrors.mediaType();
  const offset = parseSize(t.header('Upload-Offset'), 'Upload-Offset');
  if (offset === undefined) throw tusErrors.bad('MISSING_UPLOAD_OFFSET', 'PATCH needs Upload-Offset');
  const check = bodyCheck(t);
  const length = parseSize(t.header('Upload-Length'), 'Upload-Length');
  const user = await t.user();

  let s = await t.engine.get(id, user);
  if (tusExtra(s).concat === 'final') throw tusErrors.finalIsReadOnly(); // X3
  // D3: a deferred length is set once, by a PATCH; after that it never changes.
  if (length !== undefined && length !== s.length) {
    if (s.length !== undefined) throw tusErrors.bad('LENGTH_FIXED', `the upload's length is already ${s.length}`);
    s = await t.engine.declareLength(id, user, length);
  }
  // C5: checked again under the engine's lock; this early look spares reading a body we would refuse.
  if (s.state !== 'done' && offset !== s.offset) throw new ConflictError('OFFSET_MISMATCH', `the upload's offset is ${s.offset}, not ${offset}`);
  const bodyLength = t.ctx.request.length;
  if (bodyLength !== undefined && offset + bodyLength > (s.length ?? t.maxSize)) {
    throw s.length === undefined ? new FileTooLargeError(t.maxSize) : tusErrors.exceedsLength(s.length);
  }

  // An ordinary upload becomes a file in the request that brings its last byte, under the
  // same lock; partials and finals finish through concatenation instead.
  const out = await writeBody(t, id, user, offset, check, !tusExtra(s).concat);
  s = await finishIfComplete(t, out.session);
  // C6: the new offset counts only bytes stored (an interrupted body keeps what arrived).
  t.ctx.set('Upload-Offset', String(s.offset));
  t.setExpires(s);
  t.setFile(s.result);
  t.ctx.status = 204;
}
