import type { UploadResult } from '../store';

/** Which protocol created a session; each keeps its own fields in `extra`. */
export type SessionProtocol = 'tus' | 'chunked' | 'task';

/** active: taking bytes; paused: refuses bytes until resumed; done: a file now; cancelled: a tombstone. */
export type SessionState = 'active' | 'paused' | 'done' | 'cancelled';

/** A half-open byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

/** Where a session with a known length writes: a record slot reserved in a bundle. */
export interface SpaceRef {
  bundle: number;
  /** offset of the record header in the bundle */
  offset: number;
  /** bytes reserved: header + data + room for the meta */
  length: number;
}

/**
 * One resumable upload, whatever protocol drives it. Kept in the session
 * store (LMDB on one node, Redis in cluster mode), so any worker process can
 * continue it and it survives restarts.
 */
export interface Session {
  /** unguessable: 128 random bits, base64url */
  id: string;
  protocol: SessionProtocol;
  /** the user the upload belongs to; nobody else may touch it */
  user: string;
  /**
   * The node whose disk holds the bytes (its space or staging file): only it
   * writes them, commits them or gives them back. Absent where there are no
   * bytes to hold (a session made done at once) and in sessions created before
   * nodes were named (the node that has them).
   */
  node?: string;
  /** total bytes; undefined while the length is deferred (tus) */
  length?: number;
  /** end of the received prefix [0, offset): the tus Upload-Offset */
  offset: number;
  /** every range received, sorted and merged */
  ranges: ByteRange[];
  /** crc32c of [0, offset) while bytes arrived in order; undefined once they did not */
  crc?: number;
  filename?: string;
  mime?: string;
  created: number;
  /** ms; refreshed on activity. After it, the sweep removes the session and its bytes. */
  expires: number;
  state: SessionState;
  /**
   * known length: bytes go straight to their place in a bundle (no copy at the
   * end). Absent with no staging either while a lazy session awaits its first
   * write (first-write.ts).
   */
  space?: SpaceRef;
  /** deferred length: bytes go to a staging file, copied into a bundle at the end */
  staging?: string;
  /** the protocol's lookup key pointing at this session (removed with it) */
  key?: string;
  /** protocol-specific fields (tus metadata and concatenation, chunk size, task details) */
  extra: Record<string, any>;
  /** once done: the stored file */
  result?: UploadResult;
  /**
   * Cluster mode: members of the owner's group that did not confirm their
   * copy of an acknowledged write (their mirror may hold other bytes): they
   * may not take the upload over.
   */
  mirrorMissed?: string[];
  /** Cluster mode: the node that began storing the upload as a file; no other node takes it over from then on. */
  committing?: string;
}

/** What else a session update does in the same atomic step. */
export interface UpdateAlso {
  dropKeys?: string[];
  unlock?: string;
}

/** exclusive: one writer of an ordered stream (tus), complete, cancel. shared: writers of disjoint ranges (chunks, blocks). */
export type LockMode = 'exclusive' | 'shared';

/**
 * Durable session state plus a lock per session that holds across processes.
 * Embedded: LMDB (lmdb-sessions.ts); cluster mode implements the same on Redis.
 */
export interface SessionStore {
  get(id: string): Promise<Session | undefined>;
  /** Creates or replaces a session (its expiry index follows), with lookup keys pointing at it, in one step. */
  put(s: Session, keys?: string[]): Promise<void>;
  /**
   * Atomic read-modify-write; `fn` returns the new value, or undefined to
   * leave it. In the same step (one commit instead of several): `dropKeys`
   * removes lookup keys that still point at this session, `unlock` releases
   * that owner's lock.
   */
  update(id: string, fn: (s: Session) => Session | undefined, also?: UpdateAlso): Promise<Session | undefined>;
  remove(id: string): Promise<void>;
  /** A protocol's lookup key (e.g. user + file hash) → session id. */
  getKey(key: string): Promise<string | undefined>;
  setKey(key: string, id: string | undefined): Promise<void>;
  /** How many lookup keys start with `prefix`, counting up to `limit` at most. */
  countKeys(prefix: string, limit: number): Promise<number>;
  /** Lookup keys starting with `prefix` (sorted), e.g. a protocol's queue of sessions needing work. */
  keys(prefix: string, limit: number): Promise<Array<{ key: string; id: string }>>;
  /** Ids of sessions whose expiry is before `now`, oldest first (a shared backend answers per node: sweepSessions). */
  expired(now: number, limit: number): Promise<string[]>;

  /**
   * Takes the lock if free (or held only by dead or timed-out holders, or,
   * for `shared`, by other shared holders). When it is not, and
   * `askRelease`, an exclusive holder is asked to let go (see releaseAsked).
   * A shared holder may claim the byte `range` it writes: shared holders with
   * overlapping ranges (or without one) exclude each other.
   */
  tryLock(id: string, owner: string, mode: LockMode, ttlMs: number, askRelease: boolean, range?: ByteRange): Promise<boolean>;
  /** Extends a held lock; false if it was lost. */
  renewLock(id: string, owner: string, ttlMs: number): Promise<boolean>;
  /** True when another request asked the exclusive holder to let go. */
  releaseAsked(id: string, owner: string): Promise<boolean>;
  unlock(id: string, owner: string): Promise<void>;

  /** Resolves once everything written so far is on disk. */
  durable(): Promise<void>;
  close(): Promise<void>;
}
