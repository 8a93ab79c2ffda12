import fs from 'node:fs';
import path from 'node:path';
import { open, RootDatabase } from 'lmdb';
import type { ByteRange, LockMode, Session, SessionStore, UpdateAlso } from './types';
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

interface Holder {
  /** absent in locks taken before holders named their node: this node */
  node?: string;
  pid: number;
  until: number;
  /** shared holders: the bytes [start, end) this writer is writing */
  range?: ByteRange;
}

interface LockRecord {
  exclusive?: Holder & { owner: string; releaseAsked?: boolean };
  shared: Record<string, Holder>;
}

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
      const now = Date.now();
      const lock = this.live(this.db.get(lockKey(id)), now);
      const holder = { node: this.node, pid: process.pid, until: now + ttlMs, range };
      const ex = lock.exclusive && lock.exclusive.owner !== owner ? lock.exclusive : undefined;
      const others = Object.entries(lock.shared).filter(([ o ]) => o !== owner).map(([ , h ]) => h);
      // Two writers of overlapping bytes take turns, so the bytes and the
      // bookkeeping of one write are never interleaved with another's.
      const overlap = (h: Holder) => !range || !h.range || (h.range.start < range.end && range.start < h.range.end);
      const free = !ex && (mode === 'shared' ? !others.some(overlap) : others.length === 0);
      if (free) {
        if (mode === 'exclusive') lock.exclusive = { owner, ...holder };
        else lock.shared[owner] = holder;
      } else if (ex && askRelease) {
        ex.releaseAsked = true;
      }
      if (free || (ex && askRelease)) this.w.put(lockKey(id), lock);
      return free;
    });
  }

  async renewLock(id: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.w.transaction(() => {
      const lock: LockRecord | undefined = this.db.get(lockKey(id));
      const until = Date.now() + ttlMs;
      if (lock?.exclusive?.owner === owner) lock.exclusive.until = until;
      else if (lock?.shared[owner]) lock.shared[owner].until = until;
      else return false;
      this.w.put(lockKey(id), lock);
      return true;
    });
  }

  async releaseAsked(id: string, owner: string): Promise<boolean> {
    const lock: LockRecord | undefined = this.db.get(lockKey(id));
    return lock?.exclusive?.owner === owner && !!lock.exclusive.releaseAsked;
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
    const lock: LockRecord | undefined = this.db.get(lockKey(id));
    if (!lock) return;
    if (lock.exclusive?.owner === owner) delete lock.exclusive;
    delete lock.shared[owner];
    if (!lock.exclusive && Object.keys(lock.shared).length === 0) this.w.del(lockKey(id));
    else this.w.put(lockKey(id), lock);
  }

  /** The lock without holders that are dead or past their time. */
  private live(lock: LockRecord | undefined, now: number): LockRecord {
    const ok = (h: Holder) => h.until > now && this.liveness({ node: h.node ?? this.node, pid: h.pid });
    const shared: Record<string, Holder> = {};
    for (const [ owner, h ] of Object.entries(lock?.shared ?? {})) if (ok(h)) shared[owner] = h;
    return { exclusive: lock?.exclusive && ok(lock.exclusive) ? lock.exclusive : undefined, shared };
  }

  /** Puts a session and moves its expiry index entry (inside a transaction). */
  private write(s: Session): void {
    const old: Session | undefined = this.db.get(sessionKey(s.id));
    if (old && old.expires !== s.expires) this.w.del(expiryKey(old.expires, s.id));
    this.w.put(sessionKey(s.id), s);
    this.w.put(expiryKey(s.expires, s.id), 1);
  }
}

