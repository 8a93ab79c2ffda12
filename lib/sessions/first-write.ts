import { PassThrough } from 'node:stream';
import { HEADER_SIZE } from '../bundle/record';
import { UploadAbortedError } from '../errors';
import { SMALL_RECORD_MAX, SonofsStore } from '../store';
import { LockReleased } from './session-lock';
import { sameSpace, takenOver } from './receive';
import { discardSessionBytes } from './space-state';
import type { Session, SessionStore, SpaceRef } from './types';
import type { WriteOutcome, WriteRequest } from './engine-types';

/**
 * A lazy session (a small tus upload: POST, then usually one PATCH with all
 * of it) reserves nothing when it is created. Its first write either brings
 * the whole file, which is then stored like a one-request upload (one record
 * written whole, no Pending space to fill, no second sync), or it reserves the
 * space then and goes on as any session. Callers hold the session's
 * exclusive lock.
 */

/** Active, with a known length, and nothing reserved yet. */
export function awaitsSpace(s: Session): boolean {
  return (s.state === 'active' || s.state === 'paused') && s.length !== undefined && s.length > 0 && !s.space && !s.staging;
}

/** The write brings the whole file from byte 0, unchecked on the way, and may finish the upload. */
export function bringsWholeFile(s: Session, w: WriteRequest): boolean {
  return !!w.ordered && !!w.complete && w.at === 0 && w.bodyLength === s.length && !w.checksum;
}

/**
 * Stores the whole body as one upload, then marks the session done (through
 * `finish`, which also lets go of the lock). All or nothing: a body cut short,
 * or a request that takes the upload over, leaves the session as it was
 * (offset 0), and the client sends the file again.
 */
export async function storeWholeFile(
  store: SonofsStore, s: Session, w: WriteRequest, released: AbortSignal,
  finish: (change: Partial<Session>) => Promise<void>,
): Promise<WriteOutcome> {
  // store.upload destroys a stream it gives up on: give it one of its own,
  // so the request itself can still be answered.
  const body = new PassThrough();
  const stop = (err: Error) => {
    w.source.unpipe(body);
    body.destroy(err);
  };
  const onRelease = () => stop(new LockReleased());
  const onError = (err: Error) => stop(err);
  const onClose = () => { if (!w.source.readableEnded) stop(new UploadAbortedError()); };
  released.addEventListener('abort', onRelease);
  w.source.once('error', onError);
  w.source.once('close', onClose);
  w.source.pipe(body);
  try {
    const c = w.complete!;
    const result = await store.upload(body, { user: s.user, filename: c.filename ?? s.filename, mime: c.mime ?? s.mime, size: s.length });
    const change: Partial<Session> = { state: 'done', result, offset: s.length!, ranges: [ { start: 0, end: s.length! } ], crc: undefined };
    await finish(change);
    return { session: { ...s, ...change }, received: s.length!, interrupted: false };
  } catch (err) {
    if (released.aborted || (w.source.destroyed && !w.source.readableEnded)) return { session: s, received: 0, interrupted: true };
    throw err;
  } finally {
    released.removeEventListener('abort', onRelease);
    w.source.off('error', onError);
    w.source.off('close', onClose);
    w.source.unpipe(body);
  }
}

/** Reserves the space a lazy session's bytes go to, as create() does for any other, and records it. */
export async function reserveSpace(store: SonofsStore, db: SessionStore, root: string, s: Session): Promise<Session> {
  const slot = await store.writer.reserve(HEADER_SIZE + s.length! + SMALL_RECORD_MAX);
  const space: SpaceRef = { bundle: slot.bundle, offset: slot.offset, length: slot.length };
  slot.finish();
  const cur = await db.update(s.id, c => (sameSpace(c, s) && !c.space ? { ...c, space } : undefined));
  if (!cur || cur.space?.bundle !== space.bundle || cur.space.offset !== space.offset) {
    await discardSessionBytes(root, { ...s, space, staging: undefined });
    throw takenOver();
  }
  return cur;
}
