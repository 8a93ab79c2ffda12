import { randomBytes } from 'node:crypto';
import { dropKeys } from './keys';
import { discardSessionBytes } from './space-state';
import type { Session, SessionStore } from './types';

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
