import fs from 'node:fs';
import path from 'node:path';
import { open, RootDatabase } from 'lmdb';
import type { ByteRange, LockMode, Session, SessionStore, UpdateAlso } from './types';
import { LockRecord, releaseAskedOf, releasedLock, renewedLock, takeLock } from './lock-record';
import { Liveness, localLiveness } from '../liveness';
import { txnWrites } from '../lmdb-retry';

/** Where a node keeps its upload sessions: beside the catalog, under the store's root. */
export function sessionsDir(root: string): string {
  return path.join(root, 'sessions', 'db');
}

type Key = (string | number)[];
const sessionKey = (id: string): Key => [ 's', id ];
const expiryKey = (expires: number, id: string): Key => [ 'e', expires, id ];
const lookupKey = (key: string): Key => [ 'k', key ];
const lockKey = (id: string): Key => [ 'l', id ];

/**
 * Sessions and their locks in an LMDB environment of their own (beside the
 * catalog), shared by the agent and every worker. A lock is a record written
 * in a transaction, so taking it is atomic across processes; a holder that
 * died (kill -9) or stopped renewing is ignored once its Liveness says so or
 * its time is up, so a lock is never stuck.
 *
 * Commits sync their pages but not the meta page (noMetaSync): the
 * environment stays consistent after an OS crash, which may undo its last
 * commit. Sessions can afford that: a file never depends on them (its record
 * is synced in its bundle and the catalog rebuilds from bundles), a lock means
 * nothing after a reboot, and a lost offset update makes the client send those
 * bytes again (HEAD reports the older offset); a finished upload whose last
 * update is lost is settled from its stored record (UploadSessions.settle).
 */
export class LmdbSessionStore implements SessionStore {
  private readonly db: RootDatabase;
  /** its writes: transactions tried again when lmdb-js fails a commit */
  private readonly w: ReturnType<typeof txnWrites<Key>>;

  private readonly liveness: Liveness;

  /** `node`: this node's name, recorded with each lock holder (liveness.ts). */
  constructor(readonly dir: string, readonly node: string, liveness?: Liveness) {
    this.liveness = liveness ?? localLiveness(node);
    fs.mkdirSync(dir, { recursive: true });
    this.db = open({ path: dir, compression: false, noMetaSync: true });
    this.w = txnWrites<Key>(this.db);
  }

  async get(id: string): Promise<Session | undefined> {
    return this.db.get(sessionKey(id));
  }

  async put(s: Session, keys: string[] = []): Promise<void> {
    await this.w.transaction(() => {
      this.write(s);
      for (const k of keys) this.w.put(lookupKey(k), s.id);
    });
  }

  async update(id: string, fn: (s: Session) => Session | undefined, also: UpdateAlso = {}): Promise<Session | undefined> {
    return this.w.transaction(() => {
      if (also.unlock) this.release(id, also.unlock);
      const cur: Session | undefined = this.db.get(sessionKey(id));
      if (!cur) return undefined;
      for (const k of also.dropKeys ?? []) if (this.db.get(lookupKey(k)) === id) this.w.del(lookupKey(k));
      const next = fn(cur);
      if (next) this.write(next);
      return next ?? cur;
    });
  }

  async remove(id: string): Promise<void> {
    await this.w.transaction(() => {
      const cur: Session | undefined = this.db.get(sessionKey(id));
      if (cur) this.w.del(expiryKey(cur.expires, id));
      this.w.del(sessionKey(id));
      this.w.del(lockKey(id));
    });
  }

  async getKey(key: string): Promise<string | undefined> {
    return this.db.get(lookupKey(key));
  }

  async setKey(key: string, id: string | undefined): Promise<void> {
    // In a transaction like every other write, so a commit lmdb-js fails is tried again.
    await this.w.transaction(() => (id === undefined ? this.w.del(lookupKey(key)) : this.w.put(lookupKey(key), id)));
  }

  async countKeys(prefix: string, limit: number): Promise<number> {
    // lookup keys are [ 'k', key ]: every key starting with prefix sorts below [ 'k', prefix + U+FFFF ];
    // keys only, no values read, and no more than `limit` of them (getKeysCount ignores a limit)
    let n = 0;
    for (const _key of this.db.getKeys({ start: lookupKey(prefix), end: lookupKey(`${prefix}\uffff`), limit })) n++;
    return n;
  }

  async keys(prefix: string, limit: number): Promise<Array<{ key: string; id: string }>> {
    const out: Array<{ key: string; id: string }> = [];
    for (const { key, value } of this.db.getRange({ start: lookupKey(prefix) })) {
      const [ tag, k ] = key as Key;
      if (tag !== 'k' || typeof k !== 'string' || !k.startsWith(prefix) || out.length >= limit) break;
      out.push({ key: k, id: value });
    }
    return out;
  }

  async expired(now: number, limit: number): Promise<string[]> {
    const out: string[] = [];
    for (const key of this.db.getKeys({ start: [ 'e' ], end: [ 'e', now ] })) {
      out.push((key as Key)[2] as string);
      if (out.length >= limit) break;
    }
    return out;
  }

  async tryLock(id: string, owner: string, mode: LockMode, ttlMs: number, askRelease: boolean, range?: ByteRange): Promise<boolean> {
    return this.w.transaction(() => {
      const cx = { node: this.node, liveness: this.liveness, now: Date.now() };
      const { taken, next } = takeLock(this.db.get(lockKey(id)), cx, owner, mode, ttlMs, askRelease, range);
      if (next) this.w.put(lockKey(id), next);
      return taken;
    });
  }

  async renewLock(id: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.w.transaction(() => {
      const next = renewedLock(this.db.get(lockKey(id)), owner, Date.now() + ttlMs);
      if (next) this.w.put(lockKey(id), next);
      return next !== undefined;
    });
  }

  async releaseAsked(id: string, owner: string): Promise<boolean> {
    return releaseAskedOf(this.db.get(lockKey(id)), owner);
  }

  async unlock(id: string, owner: string): Promise<void> {
    await this.w.transaction(() => this.release(id, owner));
  }

  async durable(): Promise<void> {
    await this.db.flushed;
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  /** Drops `owner`'s hold on the lock (inside a transaction). */
  private release(id: string, owner: string): void {
    const next = releasedLock(this.db.get(lockKey(id)) as LockRecord | undefined, owner);
    if (next === null) this.w.del(lockKey(id));
    else if (next) this.w.put(lockKey(id), next);
  }

  /** Puts a session and moves its expiry index entry (inside a transaction). */
  private write(s: Session): void {
    const old: Session | undefined = this.db.get(sessionKey(s.id));
    if (old && old.expires !== s.expires) this.w.del(expiryKey(old.expires, s.id));
    this.w.put(sessionKey(s.id), s);
    this.w.put(expiryKey(s.expires, s.id), 1);
  }
}

