import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { BadRequestError, ChecksumMismatchError, ConflictError, FileTooLargeError, SonofsError, UploadAbortedError } from '../errors';
import { crc32c } from '../bundle/record';
import { WriteBehind, writevFully } from '../bundle/files';
import type { SonofsStore } from '../store';
import { addRange, prefixEnd, removeRange } from './ranges';
import { dataPosition } from './space';
import { LockReleased } from './session-lock';
import type { RunningHashes } from './running-hashes';
import { pump } from './streams';
import type { Session, SessionStore } from './types';
import type { SessionOptions, WriteOutcome, WriteRequest } from './engine-types';

const fdatasync = promisify(fs.fdatasync);

/** What receive() works with: the engine's store, session store, options and running hashes. */
export interface ReceiveDeps {
  store: SonofsStore;
  db: SessionStore;
  opts: SessionOptions;
  hashes: RunningHashes;
}

/** Pumps the body into place, verifies it, makes it durable, then records the range. */
export async function receive(
  deps: ReceiveDeps, s: Session, w: WriteRequest, limit: number, released: AbortSignal, completing = false,
): Promise<WriteOutcome> {
  const { store, db, opts, hashes } = deps;
  const inOrder = w.ordered === true && w.at === s.offset;
  const cached = hashes.get(s.id);
  let sha1 = inOrder ? (cached?.offset === w.at ? cached.hash.copy() : w.at === 0 ? createHash('sha1') : undefined) : undefined;
  let crc = inOrder ? s.crc : undefined;
  const check = w.checksum ? createHash(w.checksum.algorithm) : undefined;
  let received = 0;
  /** bytes from w.at that may have been overwritten, even by a write that then failed */
  let touched = 0;
  let cut: Error | undefined;
  let inflight: Promise<void> = Promise.resolve();
  /** set when the source failed: no write may start after that */
  let stopped = false;

  const fd = s.space ? store.files.acquire(s.space.bundle) : fs.openSync(s.staging!, 'r+');
  const position = (at: number) => (s.space ? dataPosition(s.space, at) : at);
  const space = s.space;
  const behind = opts.fsync && space ? new WriteBehind(() => store.files.sync(space.bundle)) : undefined;
  let onRelease = () => undefined as void;
  try {
    const sink = new Writable({
      highWaterMark: 1 << 20,
      writev: (entries, cb) => {
        const chunks = entries.map(e => e.chunk as Buffer);
        const len = chunks.reduce((n, c) => n + c.length, 0);
        if (received + len > limit) {
          cb(w.length !== undefined
            ? new BadRequestError('SIZE_MISMATCH', `this request carries more than ${w.length} bytes`)
            : s.length !== undefined
              ? new BadRequestError('EXCEEDS_LENGTH', `the bytes go past the upload's length ${s.length}`)
              : new FileTooLargeError(opts.maxFileSize));
          return;
        }
        if (stopped) {
          cb(new Error('the request ended'));
          return;
        }
        touched = received + len;
        const written = writevFully(fd, chunks, position(w.at + received));
        // Hashed while the thread pool writes the same (unchanging) buffers.
        for (const c of chunks) {
          sha1?.update(c);
          check?.update(c);
          if (crc !== undefined) crc = crc32c(c, crc);
        }
        inflight = written.then(() => {
          received += len;
          behind?.wrote(received);
          cb();
        }, err => {
          // The running sha1 and crc now cover bytes that are not on disk. A kept partial
          // write (tus) still records what landed before: with no running hash, as if out of order.
          sha1 = undefined;
          crc = undefined;
          cb(err);
        });
      },
    });
    // Another request takes over: stop reading this one, but leave its
    // connection alone, so it is still answered (with what it stored).
    onRelease = () => sink.destroy(new LockReleased());
    released.addEventListener('abort', onRelease);
    try {
      await pump(w.source, sink);
    } catch (err) {
      // A failed source does not wait for the sink, which may still hold
      // chunks: start no more writes, and let the one in flight land (and
      // count) before the fd is let go, the range recorded or hashes kept.
      stopped = true;
      await inflight;
      if (err instanceof SonofsError) throw err;
      cut = err as Error;
    }
    if (cut && !(w.keepPartial && !w.checksum && w.length === undefined)) {
      throw cut instanceof LockReleased ? new ConflictError('UPLOAD_TAKEN_OVER', 'another request took over this upload') : new UploadAbortedError();
    }
    if (!cut && w.length !== undefined && received !== w.length) {
      throw new BadRequestError('SIZE_MISMATCH', `received ${received} bytes, expected ${w.length}`);
    }
    if (check && !cut && !check.digest().equals(w.checksum!.digest)) {
      throw new ChecksumMismatchError(`the bytes do not match their ${w.checksum!.algorithm} checksum; they were discarded`);
    }
    await behind?.settled();
    // Synced before the file's commit writes its header: a record whose header
    // reached the disk always has its data there (a synced catalog trusts it).
    if (opts.fsync && received > 0) {
      if (s.space) await store.files.sync(s.space.bundle);
      else await fdatasync(fd);
    }
  } catch (err) {
    // A refused write may have overwritten bytes received earlier (a chunk
    // sent again): those no longer count, so the client sends them again.
    if (touched > 0) await forgetRange(db, hashes, s, w.at, w.at + touched);
    throw err;
  } finally {
    released.removeEventListener('abort', onRelease);
    if (s.space) store.files.release(s.space.bundle);
    else fs.closeSync(fd);
  }

  const end = w.at + received;
  // The write that completes an exclusive upload leaves its ranges to the
  // file's commit, which records them with the done state in one step
  // (should a crash come in between, the stored record tells: see write()).
  const whole = completing && completes(s, w, received, !!cut);
  // cluster mode: the group's members keep a copy before the range counts, so one can take the upload over
  const missed = !whole && received && (s.space || s.staging) && opts.mirror ? await opts.mirror(s, { start: w.at, end }) : [];
  const record = (cur: Session): Session | undefined => {
    // another node took the upload over (this one was thought dead): its bytes are there now, not here
    if (!sameSpace(cur, s)) return undefined;
    const ranges = addRange(cur.ranges, w.at, end);
    // The running crc holds only while bytes extend the prefix, in order.
    const stillInOrder = inOrder && cur.offset === w.at && crc !== undefined;
    const mirrorMissed = missed.length ? { mirrorMissed: [ ...new Set([ ...(cur.mirrorMissed ?? []), ...missed ]) ] } : {};
    return {
      ...cur, ranges, offset: prefixEnd(ranges), crc: stillInOrder ? crc : received ? undefined : cur.crc, expires: Date.now() + opts.ttlMs, ...mirrorMissed,
    };
  };
  const session = whole ? record(s)! : (await db.update(s.id, record))!;
  if (session && !sameSpace(session, s)) throw takenOver();
  if (sha1 && received) hashes.remember(s.id, end, sha1);
  else if (received) hashes.forget(s.id);
  return { session, received, interrupted: !!cut };
}

/** Un-records bytes a failed write may have overwritten; a shorter prefix drops the running hash and crc. */
async function forgetRange(db: SessionStore, hashes: RunningHashes, s: Session, start: number, end: number): Promise<void> {
  const id = s.id;
  await db.update(id, cur => {
    // taken over by another node: the ranges are of its bytes, not of these
    if (!sameSpace(cur, s) || !cur.ranges.some(r => r.start < end && r.end > start)) return undefined;
    const ranges = removeRange(cur.ranges, start, end);
    const offset = prefixEnd(ranges);
    if (offset !== cur.offset) hashes.forget(id);
    return { ...cur, ranges, offset, crc: offset === cur.offset ? cur.crc : undefined };
  });
}

/** The session still has its bytes where this write put them (same node, same space). */
export function sameSpace(cur: Session, s: Session): boolean {
  return cur.node === s.node && cur.space?.bundle === s.space?.bundle && cur.space?.offset === s.space?.offset;
}

export function takenOver(): ConflictError {
  return new ConflictError('UPLOAD_TAKEN_OVER', 'another node took this upload over; ask for its offset (HEAD) and send the rest again');
}

/** True when an ordered write of `received` bytes, not cut short, brings a reserved upload's last byte. */
function completes(s: Session, w: WriteRequest, received: number, cut: boolean): boolean {
  return !!w.ordered && !cut && s.space !== undefined && s.offset === w.at && w.at + received === s.length;
}
