import { randomBytes } from 'node:crypto';
import { LockedError } from '../errors';
import type { ByteRange, LockMode, SessionStore } from './types';

/** Why a write stopped reading: another request asked for the lock. */
export class LockReleased extends Error {
  /** a 4xx: Egg logs the cut connection as a warning, not an error */
  readonly status = 409;
  constructor() {
    super('another request took over this upload');
  }
}

/** A session lock this request holds; `held` turns false once a last update let go of it. */
export interface HeldLock {
  owner: string;
  held: boolean;
}

/**
 * A name for one hold of a lock, unique across processes and restarts: the
 * pid, a random tag drawn once per process (a reused pid gets another), and a
 * counter (no random bytes per request).
 */
const OWNER_TAG = `${process.pid}:${randomBytes(6).toString('hex')}`;
let ownerSerial = 0;
const lockOwner = (): string => `${OWNER_TAG}:${++ownerSerial}`;

/**
 * Runs `fn` holding the session's lock. An exclusive waiter asks the holder
 * to let go (tus: a client resuming after a dropped connection should not
 * wait for the old request to time out); the holder's `released` signal fires.
 */
export async function withSessionLock<T>(
  db: SessionStore, lockTimeoutMs: number, id: string, mode: LockMode,
  fn: (released: AbortSignal, lock: HeldLock) => Promise<T>, range?: ByteRange,
): Promise<T> {
  const owner = lockOwner();
  const ttl = 10_000;
  const deadline = Date.now() + lockTimeoutMs;
  for (let wait = 5; !await db.tryLock(id, owner, mode, ttl, mode === 'exclusive', range); wait = Math.min(wait * 2, 100)) {
    if (Date.now() + wait > deadline) throw new LockedError();
    await new Promise(r => setTimeout(r, wait));
  }
  const released = new AbortController();
  const timer = setInterval(() => {
    db.renewLock(id, owner, ttl)
      .then(async held => held && mode === 'exclusive' ? db.releaseAsked(id, owner) : !held)
      .then(stop => { if (stop) released.abort(); }, () => undefined);
  }, 200);
  const lock: HeldLock = { owner, held: true };
  try {
    return await fn(released.signal, lock);
  } finally {
    clearInterval(timer);
    if (lock.held) await db.unlock(id, owner);
  }
}
