import type { ByteRange, LockMode } from './types';
import type { Liveness } from '../liveness';

/**
 * A session's lock as a value every session backend stores and changes
 * atomically (LMDB in a transaction, Redis with a compare-and-set): one
 * exclusive holder, or shared holders of disjoint byte ranges. A holder that
 * died (kill -9, or its node left the cluster) or stopped renewing counts no
 * more, so a lock is never stuck.
 */
export interface Holder {
  /** absent in locks taken before holders named their node: the reader's node */
  node?: string;
  pid: number;
  until: number;
  /** shared holders: the bytes [start, end) this writer is writing */
  range?: ByteRange;
}

export interface LockRecord {
  exclusive?: Holder & { owner: string; releaseAsked?: boolean };
  shared: Record<string, Holder>;
}

/** Who is asking, and how a backend tells live holders. */
export interface LockContext {
  node: string;
  liveness: Liveness;
  now: number;
}

/** The lock without holders that are dead or past their time. */
export function liveHolders(lock: LockRecord | undefined, cx: LockContext): LockRecord {
  const ok = (h: Holder) => h.until > cx.now && cx.liveness({ node: h.node ?? cx.node, pid: h.pid });
  const shared: Record<string, Holder> = {};
  for (const [ owner, h ] of Object.entries(lock?.shared ?? {})) if (ok(h)) shared[owner] = h;
  return { exclusive: lock?.exclusive && ok(lock.exclusive) ? lock.exclusive : undefined, shared };
}

/**
 * Tries to take the lock for `owner`. `next` is the record to store, or
 * undefined when nothing changes; `taken` whether the owner now holds it.
 */
export function takeLock(
  stored: LockRecord | undefined, cx: LockContext, owner: string, mode: LockMode, ttlMs: number, askRelease: boolean, range?: ByteRange,
): { taken: boolean; next?: LockRecord } {
  const lock = liveHolders(stored, cx);
  const holder: Holder = { node: cx.node, pid: process.pid, until: cx.now + ttlMs, range };
  const ex = lock.exclusive && lock.exclusive.owner !== owner ? lock.exclusive : undefined;
  const others = Object.entries(lock.shared).filter(([ o ]) => o !== owner).map(([ , h ]) => h);
  // Two writers of overlapping bytes take turns, so the bytes and the
  // bookkeeping of one write are never interleaved with another's.
  const overlap = (h: Holder) => !range || !h.range || (h.range.start < range.end && range.start < h.range.end);
  const free = !ex && (mode === 'shared' ? !others.some(overlap) : others.length === 0);
  if (free) {
    if (mode === 'exclusive') lock.exclusive = { owner, ...holder };
    else lock.shared[owner] = holder;
    return { taken: true, next: lock };
  }
  if (ex && askRelease) {
    ex.releaseAsked = true;
    return { taken: false, next: lock };
  }
  return { taken: false };
}

/** The lock with `owner`'s hold extended; undefined if the owner lost it. */
export function renewedLock(lock: LockRecord | undefined, owner: string, until: number): LockRecord | undefined {
  if (lock?.exclusive?.owner === owner) return { ...lock, exclusive: { ...lock.exclusive, until } };
  if (lock?.shared[owner]) return { ...lock, shared: { ...lock.shared, [owner]: { ...lock.shared[owner], until } } };
  return undefined;
}

export function releaseAskedOf(lock: LockRecord | undefined, owner: string): boolean {
  return lock?.exclusive?.owner === owner && !!lock.exclusive.releaseAsked;
}

/** The lock without `owner`'s hold: null once nobody holds it (delete it), undefined if unchanged. */
export function releasedLock(lock: LockRecord | undefined, owner: string): LockRecord | null | undefined {
  if (!lock || (lock.exclusive?.owner !== owner && !lock.shared[owner])) return undefined;
  const shared = { ...lock.shared };
  delete shared[owner];
  const exclusive = lock.exclusive?.owner === owner ? undefined : lock.exclusive;
  return !exclusive && Object.keys(shared).length === 0 ? null : { exclusive, shared };
}
