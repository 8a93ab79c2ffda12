import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BadRequestError, ConflictError, FileTooLargeError, GoneError, NotFoundError, SonofsError } from '../errors';
import { HEADER_SIZE } from '../bundle/record';
import { SMALL_RECORD_MAX, SonofsStore, UploadResult } from '../store';
import { checkName, checkUser } from '../validate';
import { addRange, missingRanges } from './ranges';
import { SessionSpace, readSessionData, readSpaceHeader } from './space';
import { bundlePath, punchHole } from '../bundle/files';
import type { ByteRange, LockMode, Session, SessionStore } from './types';
import { assertBytesHere, bytesAreHere } from './owner';
import { keysOf, keysToDrop, openKeyPrefix } from './keys';
import { adoptSession } from './adopt';
import { awaitsSpace, bringsWholeFile, reserveSpace, storeWholeFile } from './first-write';
import { ReceiveDeps, receive, sameSpace, takenOver } from './receive';
import { RunningHashes } from './running-hashes';
import { HeldLock, withSessionLock } from './session-lock';
import { discardSessionBytes, spaceIsCommitted, spaceIsPending } from './space-state';
import { concatStreams, digestOf } from './streams';
import { ExpireHook, sweepSessions } from './sweep';
import type { CompleteOptions, CreateSession, SessionOptions, WriteOutcome, WriteRequest } from './engine-types';

export * from './engine-types';

/** Hash algorithms a checksum may name (tus Upload-Checksum, course chkhash, fupload partMd5). */
export const CHECKSUM_ALGORITHMS = [ 'sha1', 'md5', 'sha256', 'sha512' ] as const;

/**
 * The one engine under tus, the course's chunked upload and the fupload task
 * API: durable sessions with a cross-process lock each, bytes written straight
 * to their final place (a record slot reserved in a bundle when the length is
 * known), and completion into an ordinary file (sha1, dedup, file id).
 */
export class UploadSessions {
  private readonly hashes = new RunningHashes();

  constructor(readonly store: SonofsStore, readonly db: SessionStore, readonly opts: SessionOptions) {}

  async create(c: CreateSession): Promise<Session> {
    const user = checkUser(c.user);
    const filename = c.filename === undefined ? undefined : checkName(c.filename);
    if (c.length !== undefined) {
      if (!Number.isSafeInteger(c.length) || c.length < 0) throw new BadRequestError('INVALID_SIZE', 'the upload length must be a non-negative integer');
      if (c.length > this.opts.maxFileSize) throw new FileTooLargeError(this.opts.maxFileSize);
    }
    const maxOpen = this.opts.maxOpenPerUser ?? 1000;
    if (await this.db.countKeys(openKeyPrefix(user), maxOpen) >= maxOpen) {
      throw new SonofsError(429, 'TOO_MANY_UPLOADS', `you have ${maxOpen} unfinished uploads; finish or cancel some first`);
    }
    const id = randomBytes(16).toString('base64url');
    const now = Date.now();
    const s: Session = {
      id, protocol: c.protocol, user, node: this.opts.node, length: c.length, offset: 0, ranges: [], crc: 0, filename, mime: c.mime,
      created: now, expires: now + this.opts.ttlMs, state: 'active', extra: c.extra ?? {}, key: c.key,
    };
    if (c.lazy && c.length !== undefined && c.length > 0 && c.length <= (this.opts.lazyMax ?? 0)) {
      // its first write reserves the space, or stores the whole file in one go (first-write.ts)
    } else if (c.length !== undefined) {
      // Reserve the record now; it stays Pending (skipped by scans) until commit.
      const slot = await this.store.writer.reserve(HEADER_SIZE + c.length + SMALL_RECORD_MAX);
      s.space = { bundle: slot.bundle, offset: slot.offset, length: slot.length };
      // The worker is done with the slot; the session owns it from here on.
      slot.finish();
    } else {
      s.staging = path.join(this.stagingDir(), id);
      fs.mkdirSync(this.stagingDir(), { recursive: true });
      fs.closeSync(fs.openSync(s.staging, 'wx'));
    }
    await this.db.put(s, keysOf(s));
    await this.db.durable();
    return s;
  }

  /** Makes a session that is already a file (an upload that came whole in one request). */
  async recordDone(c: CreateSession, result: UploadResult): Promise<Session> {
    const now = Date.now();
    const s: Session = {
      id: randomBytes(16).toString('base64url'), protocol: c.protocol, user: checkUser(c.user), length: result.size,
      offset: result.size, ranges: result.size ? [ { start: 0, end: result.size } ] : [], filename: result.filename,
      mime: result.mime, created: now, expires: now + this.opts.doneTtlMs, state: 'done', extra: c.extra ?? {}, result,
    };
    await this.db.put(s);
    return s;
  }

  /**
   * The session, if `user` may see it: unknown or another user's is 404,
   * cancelled or expired is 410.
   */
  async get(id: string, user?: string): Promise<Session> {
    const s = typeof id === 'string' && id.length <= 64 ? await this.db.get(id) : undefined;
    if (!s || (user !== undefined && s.user !== user)) throw new NotFoundError('UPLOAD_NOT_FOUND', 'no upload has this id');
    if (s.state === 'cancelled') throw new GoneError('UPLOAD_CANCELLED', 'this upload was cancelled');
    if (s.expires <= Date.now()) {
      if (s.state === 'done') throw new NotFoundError('UPLOAD_NOT_FOUND', 'no upload has this id');
      throw new GoneError('UPLOAD_EXPIRED', 'this upload expired; start a new one');
    }
    return s;
  }

  findByKey(key: string): Promise<string | undefined> {
    return this.db.getKey(key);
  }

  /** Missing ranges of a session with a known length. */
  missing(s: Session): { start: number; end: number }[] {
    return s.length === undefined ? [] : missingRanges(s.ranges, s.length);
  }

  /** Stores the bytes of one request at their place in the upload. */
  async write(id: string, w: WriteRequest): Promise<WriteOutcome> {
    const mode: LockMode = w.ordered ? 'exclusive' : 'shared';
    try {
      return await this.withLock(id, mode, async (released, lock) => {
        let s = await this.get(id, w.user);
        assertBytesHere(s, this.opts.node);
        // Stored already, though the session does not say so (a crash between the file's
        // commit and the session's last update): never write into a stored file's bytes.
        const settled = await this.settleLocked(s, lock);
        // A resuming client that missed the answer (tus): the upload is whole, so say so.
        if (settled !== s && w.ordered) return { session: settled, received: 0, interrupted: false };
        s = settled;
        if (s.state === 'done') throw new ConflictError('UPLOAD_FINISHED', 'this upload is already complete');
        if (s.state === 'paused') throw new ConflictError('UPLOAD_PAUSED', 'this upload is paused; resume it first');
        if (!Number.isSafeInteger(w.at) || w.at < 0) throw new BadRequestError('INVALID_OFFSET', 'the offset must be a non-negative integer');
        if (w.ordered && w.at !== s.offset) throw new ConflictError('OFFSET_MISMATCH', `the upload's offset is ${s.offset}, not ${w.at}`);
        const room = (s.length ?? this.opts.maxFileSize) - w.at;
        if (room < 0 || (w.length !== undefined && w.length > room)) {
          throw new BadRequestError('RANGE_OUTSIDE_FILE', `bytes from ${w.at} do not fit the upload's length ${s.length}`);
        }
        // Only a write that would add one more separate range is refused: filling gaps always works.
        const maxRanges = this.opts.maxRanges ?? 10_000;
        if (addRange(s.ranges, w.at, w.at + Math.max(w.length ?? 0, 1)).length > maxRanges) {
          throw new BadRequestError('TOO_FRAGMENTED', `the upload already has ${maxRanges} separate received ranges; send the gaps between them`);
        }
        // a lazy session's first write (first-write.ts)
        if (awaitsSpace(s)) {
          if (bringsWholeFile(s, w)) return await storeWholeFile(this.store, s, w, released, change => this.finish(s, change, lock));
          s = await reserveSpace(this.store, this.db, this.opts.root, s);
        }
        const out = await receive(this.receiveDeps(), s, w, w.length ?? room, released, !!w.complete);
        const all = out.session;
        if (!w.complete || !w.ordered || out.interrupted || all.length === undefined || all.offset !== all.length || all.state !== 'active') return out;
        // write() settled the session under this lock: its space is still Pending
        const result = await this.completeLocked(all, w.complete, lock, true);
        return { ...out, session: { ...all, state: 'done' as const, result } };
      }, w.ordered ? undefined : { start: w.at, end: w.at + (w.length ?? this.opts.maxFileSize) });
    } finally {
      if (!w.source.readableEnded && !w.source.destroyed) w.source.resume(); // drain what we will not read
    }
  }

  /** Cluster mode: takes over an upload whose node is down, from this node's mirror of its bytes (adopt.ts). */
  async adopt(id: string, deadNode: string): Promise<Session | undefined> {
    return this.withLock(id, 'exclusive', async () => {
      const s = await this.db.get(id);
      return s && adoptSession({ store: this.store, db: this.db, opts: this.opts }, s, deadNode);
    });
  }

  /** tus creation-defer-length: the length, once, then the upload can finish. */
  async declareLength(id: string, user: string, length: number): Promise<Session> {
    if (!Number.isSafeInteger(length) || length < 0) throw new BadRequestError('INVALID_SIZE', 'the upload length must be a non-negative integer');
    if (length > this.opts.maxFileSize) throw new FileTooLargeError(this.opts.maxFileSize);
    return this.withLock(id, 'exclusive', async () => {
      const s = await this.get(id, user);
      if (s.length !== undefined && s.length !== length) throw new BadRequestError('LENGTH_FIXED', `the upload's length is already ${s.length}`);
      if (length < s.offset) throw new BadRequestError('INVALID_SIZE', `${s.offset} bytes were already received`);
      return (await this.db.update(id, cur => ({ ...cur, length })))!;
    });
  }

  /** Changes protocol fields or the state (pause, resume) under the session's lock. */
  async update(id: string, user: string | undefined, fn: (s: Session) => Session): Promise<Session> {
    return this.withLock(id, 'exclusive', async () => {
      await this.get(id, user);
      return (await this.db.update(id, fn))!;
    });
  }

  /**
   * The session as it really is: one whose file was stored by a commit that
   * a crash kept from its last update (or one still active) is finished now.
   * Costs one header read for an active upload with reserved space.
   */
  async settle(s: Session): Promise<Session> {
    // another node's upload: the shared record is all this node knows
    if (!bytesAreHere(s, this.opts.node) || s.state !== 'active' || !s.space || !spaceIsCommitted(this.opts.root, s, this.store.files)) return s;
    return this.withLock(s.id, 'exclusive', async (_, lock) => this.settleLocked(await this.get(s.id, s.user), lock));
  }

  /** settle() for a holder of the lock: a stored file is never written into again. */
  private async settleLocked(s: Session, lock: HeldLock): Promise<Session> {
    if (s.state !== 'active' || !s.space || !spaceIsCommitted(this.opts.root, s, this.store.files)) return s;
    const whole = { ...s, offset: s.length!, ranges: [ { start: 0, end: s.length! } ] };
    const result = await this.completeLocked(whole, {}, lock);
    return { ...whole, state: 'done', result };
  }

  /** Turns a session whose bytes are all in into an ordinary file. Idempotent. */
  async complete(id: string, c: CompleteOptions = {}): Promise<UploadResult> {
    return this.withLock(id, 'exclusive', async (_, lock) => this.completeLocked(await this.get(id, c.user), c, lock));
  }

  /** complete() for a holder of the session's lock; the last step also lets go of the lock. `knownPending`: the caller read the space header under this lock. */
  private async completeLocked(s: Session, c: CompleteOptions, lock: HeldLock, knownPending = false): Promise<UploadResult> {
    if (s.state === 'done') return s.result!;
    assertBytesHere(s, this.opts.node);
    if (s.length === undefined) throw new ConflictError('LENGTH_UNKNOWN', 'the upload length is not known yet');
    if (c.expectSize !== undefined && c.expectSize !== s.length) {
      throw new BadRequestError('SIZE_MISMATCH', `the upload has ${s.length} bytes, not ${c.expectSize}`);
    }
    const gaps = missingRanges(s.ranges, s.length);
    if (gaps.length) {
      throw new ConflictError('UPLOAD_INCOMPLETE', `bytes missing: ${gaps.slice(0, 5).map(g => `${g.start}-${g.end - 1}`).join(', ')}${gaps.length > 5 ? ', ...' : ''}`);
    }
    const result = await this.commit(s, c, knownPending);
    // Content already stored: the space now holds only a link record; free the data blocks behind it.
    if (result.deduplicated && s.space) {
      const keep = HEADER_SIZE + SMALL_RECORD_MAX;
      await punchHole(bundlePath(this.opts.root, s.space.bundle), s.space.offset + keep, s.space.length - keep);
    }
    this.hashes.forget(s.id);
    // with the ranges: the write that completed the upload left them to this step
    await this.finish(s, { state: 'done', result, ranges: s.ranges, offset: s.offset, crc: s.crc }, lock);
    return result;
  }

  /**
   * tus concatenation: a new file made of finished parts' bytes, in order.
   * The parts stay as they are (a part may be used in several finals).
   */
  async concatenate(finalId: string, parts: Session[]): Promise<UploadResult> {
    return this.withLock(finalId, 'exclusive', async (_, lock) => {
      const s = await this.get(finalId);
      if (s.state === 'done') return s.result!;
      assertBytesHere(s, this.opts.node);
      for (const p of parts) {
        if (p.length === undefined || p.offset !== p.length) throw new ConflictError('PART_UNFINISHED', `part ${p.id} is not finished`);
      }
      const size = parts.reduce((n, p) => n + p.length!, 0);
      const streams = parts.map(p => () => readSessionData(this.opts.root, p, 0, p.length!));
      const result = await this.store.upload(Readable.from(concatStreams(streams)), {
        user: s.user, filename: s.filename, mime: s.mime, size,
      });
      // The final's own space or staging file never held bytes: give it back.
      await discardSessionBytes(this.opts.root, s);
      await this.finish(s, { state: 'done', result, length: size, offset: size, ranges: size ? [ { start: 0, end: size } ] : [] }, lock);
      return result;
    });
  }

  /** Stops an upload and gives its bytes back; the id answers 410 until the tombstone expires. */
  async cancel(id: string, user?: string): Promise<void> {
    await this.withLock(id, 'exclusive', async (_, lock) => {
      const s = await this.get(id, user);
      if (s.state === 'done') throw new ConflictError('UPLOAD_FINISHED', 'this upload is already a stored file');
      assertBytesHere(s, this.opts.node);
      await discardSessionBytes(this.opts.root, s);
      this.hashes.forget(id);
      await this.finish(s, { state: 'cancelled' }, lock);
    });
  }

  /** Removes sessions past their expiry (see sweepSessions). */
  sweep(now = Date.now(), onExpire?: ExpireHook): Promise<number> {
    return sweepSessions(this.db, this.opts.root, now, onExpire);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private receiveDeps(): ReceiveDeps {
    return { store: this.store, db: this.db, opts: this.opts, hashes: this.hashes };
  }

  private stagingDir(): string {
    return path.join(this.opts.root, 'sessions', 'staging');
  }

  /**
   * Cluster mode (members keep copies): from here on no other node takes the
   * upload over, or two nodes could store it; refused when one already has.
   */
  private async claimCommit(s: Session): Promise<void> {
    if (!this.opts.mirror) return;
    const cur = await this.db.update(s.id, c => (sameSpace(c, s) && c.committing !== this.opts.node ? { ...c, committing: this.opts.node } : undefined));
    if (!cur || !sameSpace(cur, s)) throw takenOver();
  }

  /** The session's last change, its lookup keys dropped and (given the holder) its lock let go, in one commit. */
  private async finish(s: Session, change: Partial<Session>, lock?: HeldLock): Promise<void> {
    if (this.opts.mirror) {
      // a session another node took over meanwhile is that node's to finish, its lookup keys too
      const cur = await this.db.get(s.id);
      if (cur && !sameSpace(cur, s)) {
        if (lock) await this.db.unlock(s.id, lock.owner);
        if (lock) lock.held = false;
        return;
      }
    }
    await this.db.update(s.id, cur => (sameSpace(cur, s) ? { ...cur, ...change, expires: Date.now() + this.opts.doneTtlMs } : undefined), {
      dropKeys: keysToDrop(s), unlock: lock?.owner,
    });
    if (lock) lock.held = false;
  }

  /** Writes the file's record (or finds it, if a crash came between the commit and the session update). */
  private async commit(s: Session, c: CompleteOptions, knownPending = false): Promise<UploadResult> {
    const filename = c.filename ?? s.filename;
    const mime = c.mime ?? s.mime;
    const length = s.length!;
    if (s.space && !knownPending && !spaceIsPending(this.opts.root, s, this.store.files)) return this.committedResult(s, filename);
    let digest: { sha1: Buffer; crc: number; other?: Buffer } | undefined = c.expectDigest ? undefined : this.hashes.cachedDigest(s);
    if (!digest && (s.space || c.expectSha1 || c.expectDigest)) {
      digest = await digestOf(readSessionData(this.opts.root, s, 0, length), c.expectDigest?.algorithm);
    }
    if (c.expectDigest && !digest!.other!.equals(c.expectDigest.digest)) {
      throw new BadRequestError('FILE_HASH_MISMATCH', `the uploaded bytes have ${c.expectDigest.algorithm} ${digest!.other!.toString('hex')}, not ${c.expectDigest.digest.toString('hex')}`);
    }
    if (c.expectSha1 && digest!.sha1.toString('hex') !== c.expectSha1.toLowerCase()) {
      throw new BadRequestError('FILE_HASH_MISMATCH', `the uploaded bytes have sha1 ${digest!.sha1.toString('hex')}, not ${c.expectSha1}`);
    }
    await this.claimCommit(s);
    if (s.space) {
      return this.store.commitSpace(new SessionSpace(this.store.files, s.space), {
        user: s.user, filename, mime, size: length, sha1: digest!.sha1, crc: digest!.crc,
      });
    }
    // Deferred length: the one copy, from staging into a bundle.
    const result = await this.store.upload(readSessionData(this.opts.root, s, 0, length), { user: s.user, filename, mime, size: length });
    fs.rmSync(s.staging!, { force: true });
    return result;
  }

  private async committedResult(s: Session, filename: string | undefined): Promise<UploadResult> {
    const sha1 = readSpaceHeader(this.opts.root, s.space!, this.store.files)!.sha1.toString('hex');
    const link = await this.store.getUserFile(s.user, sha1);
    if (!link) throw new ConflictError('UPLOAD_GONE', 'the upload was stored, then deleted');
    // The commit that stored it may have died before its fdatasync: never answer for a file not on disk.
    await this.store.durable(s.space!.bundle, link.fileId);
    return {
      fileId: link.fileId, fileHash: sha1, size: link.size, mime: link.mime, filename: filename ?? link.name,
      uploadAt: link.at, deduplicated: false,
    };
  }

  /** Runs `fn` holding the session's lock (see withSessionLock). */
  private withLock<T>(id: string, mode: LockMode, fn: (released: AbortSignal, lock: HeldLock) => Promise<T>, range?: ByteRange): Promise<T> {
    return withSessionLock(this.db, this.opts.lockTimeoutMs, id, mode, fn, range);
  }
}
