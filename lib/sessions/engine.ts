import { createHash, Hash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import {
  BadRequestError, ConflictError, FileTooLargeError, GoneError, LockedError, NotFoundError, SonofsError, UploadAbortedError,
  ChecksumMismatchError,
} from '../errors';
import { crc32c, HEADER_SIZE, RecordKind } from '../bundle/record';
import { SMALL_RECORD_MAX, SonofsStore, UploadResult } from '../store';
import { checkName, checkUser } from '../validate';
import { addRange, missingRanges, prefixEnd, removeRange } from './ranges';
import { SessionSpace, dataPosition, releaseSpace, readSessionData, readSpaceHeader } from './space';
import { BundleFiles, WriteBehind, bundlePath, punchHole, writevFully } from '../bundle/files';
import type { ByteRange, LockMode, Session, SessionProtocol, SessionStore } from './types';
import { assertBytesHere, bytesAreHere } from './owner';

const fdatasync = promisify(fs.fdatasync);

export interface SessionOptions {
  /** the store's root; staging files go under root/sessions/staging */
  root: string;
  /** this node's name (liveness.ts nodeName): sessions it creates hold their bytes here */
  node: string;
  /** an unfinished upload idle this long is removed with its bytes (ms) */
  ttlMs: number;
  /** a finished or cancelled upload still answers for this long (ms) */
  doneTtlMs: number;
  /** how long a request waits for another request's lock on the same upload (ms) */
  lockTimeoutMs: number;
  fsync: boolean;
  maxFileSize: number;
  /** unfinished uploads one user may have open at once (bounds the space and records a client can hold) */
  maxOpenPerUser?: number;
  /** separate received ranges one upload may have (bounds its record and the work per write; default 10,000) */
  maxRanges?: number;
}

export interface CreateSession {
  protocol: SessionProtocol;
  user: string;
  /** undefined: deferred (bytes are staged, then copied into a bundle at the end) */
  length?: number;
  filename?: string;
  mime?: string;
  extra?: Record<string, unknown>;
  /** a lookup key for the protocol (e.g. user + file hash), removed with the session */
  key?: string;
}

export interface WriteRequest {
  /** the session's owner; another user's request is answered as if it did not exist */
  user?: string;
  /** file position of the first byte */
  at: number;
  source: Readable;
  /** tus: `at` must be the current offset (409 otherwise), and writers take turns */
  ordered?: boolean;
  /** exact byte count this write must carry (a chunk); anything else is discarded */
  length?: number;
  /** digest the bytes must have; a mismatch discards them (460) */
  checksum?: { algorithm: string; digest: Buffer };
  /** keep what arrived of a body cut short (tus), instead of discarding it */
  keepPartial?: boolean;
  /** when this write brings in the last missing byte, store the file before letting go of the lock (one lock, fewer commits) */
  complete?: CompleteOptions;
}

export interface WriteOutcome {
  session: Session;
  /** bytes stored by this request */
  received: number;
  /** the body was cut short (or another request took over) and what arrived was kept */
  interrupted: boolean;
}

export interface CompleteOptions {
  user?: string;
  filename?: string;
  mime?: string;
  /** the whole file's sha1 the client claims (hex): verified */
  expectSha1?: string;
  expectSize?: number;
  /** a digest of the whole file in another algorithm (fupload's md5): verified in the same read */
  expectDigest?: { algorithm: string; digest: Buffer };
}

/** Hash algorithms a checksum may name (tus Upload-Checksum, course chkhash, fupload partMd5). */
export const CHECKSUM_ALGORITHMS = [ 'sha1', 'md5', 'sha256', 'sha512' ] as const;

/** Why a write stopped reading: another request asked for the lock. */
class LockReleased extends Error {
  /** a 4xx: Egg logs the cut connection as a warning, not an error */
  readonly status = 409;
  constructor() {
    super('another request took over this upload');
  }
}

/**
 * The one engine under tus, the course's chunked upload and the fupload task
 * API: durable sessions with a cross-process lock each, bytes written straight
 * to their final place (a record slot reserved in a bundle when the length is
 * known), and completion into an ordinary file (sha1, dedup, file id).
 */
export class UploadSessions {
  /** sha1 state of in-order uploads this process is receiving: no read-back at the end */
  private readonly hashes = new Map<string, { offset: number; hash: Hash }>();

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
    if (c.length !== undefined) {
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
        const out = await this.receive(s, w, w.length ?? room, released, !!w.complete);
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
    this.hashes.delete(s.id);
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
      this.hashes.delete(id);
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

  private stagingDir(): string {
    return path.join(this.opts.root, 'sessions', 'staging');
  }

  /** The session's last change, its lookup keys dropped and (given the holder) its lock let go, in one commit. */
  private async finish(s: Session, change: Partial<Session>, lock?: HeldLock): Promise<void> {
    await this.db.update(s.id, cur => ({ ...cur, ...change, expires: Date.now() + this.opts.doneTtlMs }), {
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
    let digest: { sha1: Buffer; crc: number; other?: Buffer } | undefined = c.expectDigest ? undefined : this.cachedDigest(s);
    if (!digest && (s.space || c.expectSha1 || c.expectDigest)) {
      digest = await digestOf(readSessionData(this.opts.root, s, 0, length), c.expectDigest?.algorithm);
    }
    if (c.expectDigest && !digest!.other!.equals(c.expectDigest.digest)) {
      throw new BadRequestError('FILE_HASH_MISMATCH', `the uploaded bytes have ${c.expectDigest.algorithm} ${digest!.other!.toString('hex')}, not ${c.expectDigest.digest.toString('hex')}`);
    }
    if (c.expectSha1 && digest!.sha1.toString('hex') !== c.expectSha1.toLowerCase()) {
      throw new BadRequestError('FILE_HASH_MISMATCH', `the uploaded bytes have sha1 ${digest!.sha1.toString('hex')}, not ${c.expectSha1}`);
    }
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

  /** sha1 and crc32c of a session received in order by this process, without reading it back. */
  private cachedDigest(s: Session): { sha1: Buffer; crc: number } | undefined {
    const h = this.hashes.get(s.id);
    if (!h || h.offset !== s.length || s.crc === undefined || s.offset !== s.length) return undefined;
    return { sha1: h.hash.copy().digest(), crc: s.crc };
  }

  /** Pumps the body into place, verifies it, makes it durable, then records the range. */
  private async receive(s: Session, w: WriteRequest, limit: number, released: AbortSignal, completing = false): Promise<WriteOutcome> {
    const inOrder = w.ordered === true && w.at === s.offset;
    const cached = this.hashes.get(s.id);
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

    const fd = s.space ? this.store.files.acquire(s.space.bundle) : fs.openSync(s.staging!, 'r+');
    const position = (at: number) => (s.space ? dataPosition(s.space, at) : at);
    const space = s.space;
    const behind = this.opts.fsync && space ? new WriteBehind(() => this.store.files.sync(space.bundle)) : undefined;
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
                : new FileTooLargeError(this.opts.maxFileSize));
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
      if (this.opts.fsync && received > 0) {
        if (s.space) await this.store.files.sync(s.space.bundle);
        else await fdatasync(fd);
      }
    } catch (err) {
      // A refused write may have overwritten bytes received earlier (a chunk
      // sent again): those no longer count, so the client sends them again.
      if (touched > 0) await this.forgetRange(s.id, w.at, w.at + touched);
      throw err;
    } finally {
      released.removeEventListener('abort', onRelease);
      if (s.space) this.store.files.release(s.space.bundle);
      else fs.closeSync(fd);
    }

    const end = w.at + received;
    const record = (cur: Session): Session => {
      const ranges = addRange(cur.ranges, w.at, end);
      // The running crc holds only while bytes extend the prefix, in order.
      const stillInOrder = inOrder && cur.offset === w.at && crc !== undefined;
      return { ...cur, ranges, offset: prefixEnd(ranges), crc: stillInOrder ? crc : received ? undefined : cur.crc, expires: Date.now() + this.opts.ttlMs };
    };
    // The write that completes an exclusive upload leaves its ranges to the
    // file's commit, which records them with the done state in one step
    // (should a crash come in between, the stored record tells: see write()).
    const whole = completing && completes(s, w, received, !!cut);
    const session = whole ? record(s) : (await this.db.update(s.id, record))!;
    if (sha1 && received) this.rememberHash(s.id, end, sha1);
    else if (received) this.hashes.delete(s.id);
    return { session, received, interrupted: !!cut };
  }

  private async forgetRange(id: string, start: number, end: number): Promise<void> {
    await this.db.update(id, cur => {
      if (!cur.ranges.some(r => r.start < end && r.end > start)) return undefined;
      const ranges = removeRange(cur.ranges, start, end);
      const offset = prefixEnd(ranges);
      if (offset !== cur.offset) this.hashes.delete(id);
      return { ...cur, ranges, offset, crc: offset === cur.offset ? cur.crc : undefined };
    });
  }

  private rememberHash(id: string, offset: number, hash: Hash): void {
    this.hashes.delete(id);
    this.hashes.set(id, { offset, hash });
    if (this.hashes.size > 1000) this.hashes.delete(this.hashes.keys().next().value!);
  }

  /**
   * Runs `fn` holding the session's lock. An exclusive waiter asks the holder
   * to let go (tus: a client resuming after a dropped connection should not
   * wait for the old request to time out); the holder's `released` signal fires.
   */
  private async withLock<T>(id: string, mode: LockMode, fn: (released: AbortSignal, lock: HeldLock) => Promise<T>, range?: ByteRange): Promise<T> {
    const owner = lockOwner();
    const ttl = 10_000;
    const deadline = Date.now() + this.opts.lockTimeoutMs;
    for (let wait = 5; !await this.db.tryLock(id, owner, mode, ttl, mode === 'exclusive', range); wait = Math.min(wait * 2, 100)) {
      if (Date.now() + wait > deadline) throw new LockedError();
      await new Promise(r => setTimeout(r, wait));
    }
    const released = new AbortController();
    const timer = setInterval(() => {
      this.db.renewLock(id, owner, ttl)
        .then(async held => held && mode === 'exclusive' ? this.db.releaseAsked(id, owner) : !held)
        .then(stop => { if (stop) released.abort(); }, () => undefined);
    }, 200);
    const lock: HeldLock = { owner, held: true };
    try {
      return await fn(released.signal, lock);
    } finally {
      clearInterval(timer);
      if (lock.held) await this.db.unlock(id, owner);
    }
  }
}

/**
 * A name for one hold of a lock, unique across processes and restarts: the
 * pid, a random tag drawn once per process (a reused pid gets another), and a
 * counter (no random bytes per request).
 */
const OWNER_TAG = `${process.pid}:${randomBytes(6).toString('hex')}`;
let ownerSerial = 0;
const lockOwner = (): string => `${OWNER_TAG}:${++ownerSerial}`;

/** The key that counts an unfinished upload against its user's limit. */
/** A user's open-upload keys: the id's length first, so no user's prefix begins another's ('a' and 'a:'). */
const openKeyPrefix = (user: string) => `open:${user.length}:${user}:`;
const openKey = (s: Session) => `${openKeyPrefix(s.user)}${s.id}`;
/** The key sessions created before the length was in it carry (dropped with them, never set). */
const legacyOpenKey = (s: Session) => `open:${s.user}:${s.id}`;

/** True when an ordered write of `received` bytes, not cut short, brings a reserved upload's last byte. */
function completes(s: Session, w: WriteRequest, received: number, cut: boolean): boolean {
  return !!w.ordered && !cut && s.space !== undefined && s.offset === w.at && w.at + received === s.length;
}

/** A session's lookup keys: its protocol key, its open-upload key. */
const keysOf = (s: Session): string[] => (s.key ? [ s.key, openKey(s) ] : [ openKey(s) ]);
/** Every lookup key that may point at a session, older forms included. */
const keysToDrop = (s: Session): string[] => [ ...keysOf(s), legacyOpenKey(s) ];

/** Removes a session's lookup keys that still point at it. */
async function dropKeys(db: SessionStore, s: Session): Promise<void> {
  await db.update(s.id, () => undefined, { dropKeys: keysToDrop(s) });
}

/** A session lock this request holds; `held` turns false once a last update let go of it. */
interface HeldLock {
  owner: string;
  held: boolean;
}

/** True while a session's reserved space still carries its Pending header (not yet a file). */
function spaceIsPending(root: string, s: Session, files?: BundleFiles): boolean {
  return readSpaceHeader(root, s.space!, files)?.kind === RecordKind.Pending;
}

/** True once a session's space holds its stored file's record. */
function spaceIsCommitted(root: string, s: Session, files: BundleFiles): boolean {
  const kind = readSpaceHeader(root, s.space!, files)?.kind;
  return kind !== undefined && kind !== RecordKind.Pending && kind !== RecordKind.Padding;
}

/** A reserved space goes back as Padding (unless it already holds the committed file); staging is deleted. */
async function discardSessionBytes(root: string, s: Session): Promise<void> {
  if (s.space && spaceIsPending(root, s)) await releaseSpace(root, s.space);
  if (s.staging) fs.rmSync(s.staging, { force: true });
}

/**
 * Called by the sweep for an unfinished session that expired, after its bytes
 * were given back: a protocol may return a tombstone to keep in its place
 * (e.g. to report the expiry later), or nothing to remove it.
 */
export type ExpireHook = (s: Session) => Session | undefined | Promise<Session | undefined>;

/**
 * Removes sessions past their expiry: unfinished ones with their bytes,
 * finished and cancelled ones just their record (a file stays). The agent
 * runs it on a timer; it needs no store, only the session store and the root.
 * A node sweeps only the sessions whose bytes are on its disk: a shared
 * session store answers `expired` with this node's sessions (and those that
 * hold no bytes) only; a node's own store holds nothing else, whatever node
 * name its sessions were created under.
 */
export async function sweepSessions(db: SessionStore, root: string, now = Date.now(), onExpire?: ExpireHook): Promise<number> {
  let removed = 0;
  const owner = `sweep:${process.pid}:${randomBytes(4).toString('hex')}`;
  // Batches until none is left (a busy session is skipped and left for the next sweep).
  for (let batch = await db.expired(now, 1000), before = -1; batch.length && removed > before; batch = await db.expired(now, 1000)) {
    before = removed;
    for (const id of batch) {
      if (!await db.tryLock(id, owner, 'exclusive', 60_000, false)) continue;
      try {
        const s = await db.get(id);
        if (!s || s.expires > now) continue;
        let tomb: Session | undefined;
        if (s.state === 'active' || s.state === 'paused') {
          await discardSessionBytes(root, s);
          tomb = await onExpire?.(s);
        }
        await dropKeys(db, s);
        if (tomb && tomb.expires > now) await db.put({ ...tomb, id, space: undefined, staging: undefined, key: undefined });
        else await db.remove(id);
        removed++;
      } finally {
        await db.unlock(id, owner);
      }
    }
  }
  return removed;
}

/**
 * source.pipe(sink) until the sink finishes. Unlike pipeline() it leaves the
 * source alive when the sink refuses (too many bytes): the request can still
 * be answered with a clear error instead of a reset connection.
 */
function pump(source: Readable, sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      source.unpipe(sink);
      reject(err);
    };
    source.once('error', fail);
    // a client that disconnects ends the request without an error on some paths
    source.once('close', () => { if (!source.readableEnded) fail(new UploadAbortedError()); });
    sink.once('error', fail);
    sink.once('finish', resolve);
    source.pipe(sink);
  });
}

async function digestOf(stream: Readable, otherAlgorithm?: string): Promise<{ sha1: Buffer; crc: number; other?: Buffer }> {
  const sha1 = createHash('sha1');
  const other = otherAlgorithm ? createHash(otherAlgorithm) : undefined;
  let crc = 0;
  for await (const chunk of stream) {
    sha1.update(chunk);
    other?.update(chunk);
    crc = crc32c(chunk, crc);
  }
  return { sha1: sha1.digest(), crc, other: other?.digest() };
}

async function* concatStreams(streams: Array<() => Readable>): AsyncGenerator<Buffer> {
  for (const open of streams) yield* open();
}

