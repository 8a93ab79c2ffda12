import { Readable } from 'node:stream';
import type { Session } from '../../../lib';
import { FileTooLargeError } from '../../../lib';
import {
  OFFSET_STREAM, mediaType, metadataText, parseConcat, parseDeferLength, parseMetadata, parseSize, tusErrors, uploadIdFromUrl,
} from '../../../lib/tus';
import { bodyCheck, writeBody } from './body';
import { concatWhenReady, finishIfComplete, knownLength } from './finish';
import { TusExtra, TusRequest, tusExtra } from './request';

/** Fields of a POST shared by every kind of creation. */
interface Creation {
  user: string;
  filename?: string;
  mime?: string;
  extra: TusExtra;
}

/**
 * POST <path> (creation, creation-with-upload, creation-defer-length,
 * concatenation): everything is validated before a byte of the body is read.
 */
export async function createUpload(t: TusRequest): Promise<void> {
  const concat = parseConcat(t.header('Upload-Concat'));
  const metadata = t.header('Upload-Metadata');
  const meta = parseMetadata(metadata);
  const c: Creation = {
    user: await t.user(), // 401 before the body
    filename: metadataText(meta, 'filename'),
    mime: metadataText(meta, 'filetype'),
    extra: { metadata: meta.size ? metadata : undefined, concat: concat?.kind },
  };
  if (concat?.kind === 'final') return createFinal(t, c, concat.urls);

  const deferred = parseDeferLength(t.header('Upload-Defer-Length'));
  const length = parseSize(t.header('Upload-Length'), 'Upload-Length');
  if (length === undefined && !deferred) throw tusErrors.bad('MISSING_UPLOAD_LENGTH', 'POST needs Upload-Length or Upload-Defer-Length: 1');
  if (length !== undefined && deferred) throw tusErrors.bad('INVALID_UPLOAD_DEFER_LENGTH', 'send Upload-Length or Upload-Defer-Length: 1, not both');
  if (length !== undefined && length > t.maxSize) throw new FileTooLargeError(t.maxSize); // CR4
  // W2: only an offset stream is upload data; any other body is not ours to read.
  const withBody = mediaType(t.header('Content-Type')) === OFFSET_STREAM;
  const bodyLength = withBody ? t.ctx.request.length : undefined;
  if (bodyLength !== undefined && bodyLength > (length ?? t.maxSize)) {
    throw length === undefined ? new FileTooLargeError(t.maxSize) : tusErrors.exceedsLength(length);
  }
  const check = withBody ? bodyCheck(t) : { trailer: false };

  // The whole file in this one request: store it like any upload and record
  // a finished session, with no reserved space, no second write, no read-back.
  const whole = length === 0 || (length !== undefined && bodyLength === length);
  if (whole && !concat && !check.checksum && !check.trailer && length! <= t.cfg.fastPathMax) {
    const source = withBody ? t.ctx.req : Readable.from([]);
    const result = await t.ctx.sonofs.upload(source, { size: length, filename: c.filename, mime: c.mime, here: true });
    const s = await t.engine.recordDone({ protocol: 'tus', user: c.user, extra: c.extra as Record<string, unknown> }, result);
    return created(t, s, withBody);
  }

  // no bytes yet: the whole file may well come in one PATCH (the engine reserves its space then, if need be)
  const lazy = !withBody && !concat;
  let s = await t.engine.create({ protocol: 'tus', user: c.user, length, filename: c.filename, mime: c.mime, extra: c.extra as Record<string, unknown>, lazy });
  try {
    if (withBody) s = (await writeBody(t, s.id, c.user, 0, check, !concat)).session;
    s = await finishIfComplete(t, s); // CR6: Upload-Length 0 is complete at once
  } catch (err) {
    // The client never learns this upload's URL: give its space back.
    await t.engine.cancel(s.id, c.user).catch(() => undefined);
    throw err;
  }
  created(t, s, withBody);
}

/**
 * Concatenation: `Upload-Concat: final;<urls>` names the caller's partial
 * uploads. The final is concatenated now if they are all finished, else as
 * soon as the last one finishes (concatenation-unfinished).
 */
async function createFinal(t: TusRequest, c: Creation, urls: string[]): Promise<void> {
  if (t.header('Upload-Length') !== undefined || t.header('Upload-Defer-Length') !== undefined) {
    throw tusErrors.bad('INVALID_UPLOAD_CONCAT', 'a final upload takes its length from its parts: omit Upload-Length and Upload-Defer-Length');
  }
  if (t.ctx.request.length) throw tusErrors.finalIsReadOnly();
  const ids = urls.map(u => uploadIdFromUrl(u, t.path));
  const parts = await Promise.all(ids.map(id => t.engine.get(id, c.user))); // another user's part: 404
  for (const p of parts) {
    if (tusExtra(p).concat !== 'partial') throw tusErrors.bad('NOT_A_PARTIAL_UPLOAD', `upload ${p.id} was not created with Upload-Concat: partial`);
  }
  const total = knownLength(parts);
  if (total !== undefined && total > t.maxSize) throw new FileTooLargeError(t.maxSize);
  const extra: TusExtra = { ...c.extra, concat: 'final', concatHeader: t.header('Upload-Concat')!.trim(), parts: ids };
  const final = await t.engine.create({ protocol: 'tus', user: c.user, filename: c.filename, mime: c.mime, extra: extra as Record<string, unknown> });
  let session: Session;
  try {
    ({ session } = await concatWhenReady(t, final, true)); // 409 when a part has too many finals waiting
  } catch (err) {
    // The client never learns this final's URL: drop it (a part that noted it forgets it on its next final).
    await t.engine.cancel(final.id, c.user).catch(() => undefined);
    throw err;
  }
  created(t, session, false);
}

/** 201 with Location (CR3); Upload-Offset after data (W3); Upload-Expires if known (E2). */
function created(t: TusRequest, s: Session, withBody: boolean): void {
  t.ctx.set('Location', t.url(s.id));
  if (withBody) t.ctx.set('Upload-Offset', String(s.offset));
  t.setExpires(s);
  t.setFile(s.result);
  t.ctx.status = 201;
}
