import type { Readable } from 'node:stream';
import type { ByteRange, Session, SessionProtocol } from './types';

/** What the session engine (engine.ts) is configured with and what its calls take and answer. */

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
  /**
   * Cluster mode, replication 'all': copies [start, end) of an unfinished
   * upload's bytes to the members of the group before the write is recorded
   * and answered, so that one of them can take the upload over should this
   * node die. Resolves with the members (node names) that did not confirm.
   */
  mirror?: (s: Session, range: ByteRange) => Promise<string[]>;
  /**
   * A session created `lazy` with a length of 1 to this many bytes reserves
   * no space until its first write (first-write.ts). 0 or absent: never.
   */
  lazyMax?: number;
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
  /**
   * The whole file may well come in one request (a tus POST, then one PATCH):
   * reserve the space at the first write, not now (up to opts.lazyMax bytes).
   */
  lazy?: boolean;
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
  /**
   * The body's announced size (its Content-Length), when it is known and the
   * bytes need no checking on the way: a lazy session's first write that
   * brings the whole file is then stored in one go (first-write.ts).
   */
  bodyLength?: number;
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
