import contentDisposition from 'content-disposition';
import type { Session } from '../../../lib';
import { ConflictError } from '../../../lib';
import { TUS_CHECKSUM_ALGORITHMS, TUS_EXTENSIONS, TUS_VERSION } from '../../../lib/tus';
import { concatWhenReady, finishIfComplete, knownLength } from './finish';
import { TusRequest, tusExtra } from './request';

/** OPTIONS (Core): what this server speaks; needs no Tus-Resumable and no user. */
export async function describeServer(t: TusRequest): Promise<void> {
  t.ctx.set('Tus-Version', TUS_VERSION);
  t.ctx.set('Tus-Extension', TUS_EXTENSIONS.join(','));
  t.ctx.set('Tus-Max-Size', String(t.maxSize));
  t.ctx.set('Tus-Checksum-Algorithm', TUS_CHECKSUM_ALGORITHMS.join(','));
  t.ctx.status = 204;
}

/**
 * The caller's upload, brought up to date: a final whose parts are all
 * finished is concatenated, an ordinary upload with all its bytes completed.
 * Also returns a final's parts (for its Upload-Length).
 */
async function current(t: TusRequest, id: string): Promise<{ s: Session; parts?: Session[] }> {
  const s = await t.engine.get(id, await t.user());
  if (tusExtra(s).concat === 'final') {
    const { session, parts } = await concatWhenReady(t, s);
    return { s: session, parts };
  }
  // settle: a file a crash stored without the session's last update is reported as the file it is
  return { s: tusExtra(s).concat === 'partial' ? s : await finishIfComplete(t, await t.engine.settle(s)) };
}

/** HEAD <path>/<id> (C4, D2, CR5, X4). */
export async function headUpload(t: TusRequest, id: string): Promise<void> {
  const { s, parts } = await current(t, id);
  const x = tusExtra(s);
  const { ctx } = t;
  ctx.set('Cache-Control', 'no-store');
  if (x.concat === 'final' && s.state !== 'done') {
    // X4: no offset until the final is concatenated; its length once every part's is known.
    const length = knownLength(parts!);
    if (length !== undefined) ctx.set('Upload-Length', String(length));
  } else {
    ctx.set('Upload-Offset', String(s.offset));
    if (s.length !== undefined) ctx.set('Upload-Length', String(s.length));
    else ctx.set('Upload-Defer-Length', '1');
  }
  if (x.metadata) ctx.set('Upload-Metadata', x.metadata);
  if (x.concat) ctx.set('Upload-Concat', x.concat === 'final' ? x.concatHeader! : 'partial');
  t.setExpires(s);
  t.setFile(s.result);
  ctx.status = 200;
}

/** GET <path>/<id>: a finished upload's bytes, streamed from the stored file. */
export async function downloadUpload(t: TusRequest, id: string): Promise<void> {
  const { s } = await current(t, id);
  if (s.state !== 'done') throw new ConflictError('UPLOAD_INCOMPLETE', `the upload has ${s.offset} of ${s.length ?? 'an unknown number of'} bytes; it is not a file yet`);
  const r = s.result!;
  const body = await t.ctx.sonofs.createReadStream(r.fileId);
  t.setFile(r);
  t.ctx.set('Content-Disposition', contentDisposition(r.filename));
  t.ctx.type = r.mime;
  t.ctx.length = r.size;
  t.ctx.status = 200;
  if (t.ctx.method === 'HEAD') body.destroy();
  else t.ctx.body = body;
}

/**
 * DELETE <path>/<id> (termination): an unfinished upload gives its bytes
 * back; a finished one only ends the session. Its file stays: the same
 * content may also be the user's through /file/upload or another upload (one
 * link per user and content), so the file is deleted through /file/delete.
 * Either way later requests get 410 (T2).
 */
export async function terminateUpload(t: TusRequest, id: string): Promise<void> {
  const user = await t.user();
  const s = await t.engine.get(id, user);
  if (s.state === 'done') {
    await t.engine.update(id, user, cur => ({ ...cur, state: 'cancelled' }));
  } else {
    await t.engine.cancel(id, user);
  }
  t.ctx.status = 204;
}
