import fs from 'node:fs';
import type { RootDatabase } from 'lmdb';
import { FORMAT1_GUARD_KEY, formatError, formatOf, guardAgainstFormat1, openCatalogEnv, writtenByFormat1 } from './lmdb-format';
import { NotFoundError } from '../errors';
import { envHolders } from './env-holders';
import { txnWrites } from '../lmdb-retry';
import { bootIdFrom, clearUnsynced, markUnsynced, tornByOsCrash } from './unsynced-marker';
import type {
  AllocState, AllocationLedger, BlobInfo, Catalog, ExtentLease, LinkInfo, RecordWrite, ReplayOptions, ReplayRecord,
  UploadCommit, UploadOutcome, UserFile,
} from './types';
import {
  ALLOC_KEY, BLOBS, FORMAT_KEY, FORMAT_VERSION, LEASES, REBUILD_KEY, SEQ_KEY, USER_COUNT_KEY, StoredLink, blobKey, decodeAlloc,
  decodeBlob, decodeLease, decodeLink, decodeSeq, decodeUserId, encodeAlloc, encodeBlob, encodeLease, encodeLink,
  encodeSeq, encodeU32, encodeUserId, leaseKey, linkKey, sha1Bytes, sha1OfBlobKey, sha1OfTimeKey, timeKey, timeRange,
  userKey,
} from './lmdb-encoding';

const NO_VALUE = Buffer.alloc(0);

/**
 * Catalog on LMDB (the `lmdb` package): one memory-mapped B+tree shared by the
 * agent and every worker process, with a single cross-process write lock, so
 * each operation is a serializable transaction without a server. Chosen over
 * SQLite for its zero-copy reads (the read path checks liveness per request)
 * and over JSON files for atomic multi-key updates.
 *
 * A resolved operation is committed and visible to every process. Commits are
 * not fsynced (noSync; syncing tripled the cost of a small upload): an
 * acknowledged upload never depends on the catalog, since its record in the
 * bundle is fsynced first, and start-up recovery replays records the catalog
 * lacks. A process crash loses no commit (they are in the page cache); after
 * an OS crash the catalog is rebuilt from the bundles (see unsynced-marker.ts).
 * Where no boot id is available, commits are synced.
 *
 * Operations run as lmdb's asynchronous transactions: callbacks queued in the
 * same tick share one commit, on lmdb's write thread. Synchronous transactions
 * made small uploads about 10% faster, but a worker then waits on its main
 * thread for the write lock another process holds: reads during uploads went
 * from a p50 of 4.0–5.3 ms to 4.8–8.5 ms (bench/README.md, 2026-12-02).
 *
 * Keys and values are bytes laid out in lmdb-encoding.ts. The environment
 * records its format; one written in another format is refused here, as is one
 * whose rebuild is not finished, and the leader rebuilds it from the bundles
 * beside it and swaps it in (lmdb-format.ts, lmdb-swap.ts).
 */
export class LmdbCatalog implements Catalog, AllocationLedger {
  private readonly db: RootDatabase<Buffer, Buffer>;
  /**
   * Its writes. A transaction's callback may run more than once (a failed commit is tried
   * again): the record it writes is an overwrite, and store.ts refuses a retry that changes
   * a link into a blob.
   */
  private readonly w: ReturnType<typeof txnWrites<Buffer>>;
  /** the boot id marking the catalog unsynced, or undefined when commits are synced */
  private readonly bootId: string | undefined;

  /**
   * `bootId`: this system's boot id (tests pretend reboots); null for synced commits.
   * `unmarked`: commits not synced and no marker, for a catalog that is synced once
   * whole before it is used (one built beside the catalog in place: lmdb-swap.ts).
   */
  constructor(readonly dir: string, opts: { bootId?: string | null; unmarked?: boolean } = {}) {
    this.bootId = opts.unmarked ? undefined : bootIdFrom(opts.bootId);
    if (this.bootId !== undefined && tornByOsCrash(dir, this.bootId)) {
      throw new Error(`[egg-sonofs] the catalog in ${dir} was open when the system went down; the leader must rebuild it first`);
    }
    fs.mkdirSync(dir, { recursive: true });
    if (this.bootId !== undefined) markUnsynced(dir, this.bootId);
    this.db = openCatalogEnv(dir, this.bootId !== undefined || opts.unmarked === true);
    const format = formatOf(this.db);
    if (format === 0) {
      // A new catalog says its format before it holds anything.
      this.db.putSync(FORMAT_KEY, Buffer.from([ FORMAT_VERSION ]));
    } else if (format !== FORMAT_VERSION) {
      this.db.close().catch(() => undefined);
      throw formatError(dir, format);
    } else if (this.db.getBinaryFast(REBUILD_KEY)) {
      this.db.close().catch(() => undefined);
      throw new Error(`[egg-sonofs] the catalog in ${dir} is partly rebuilt from the bundles; the leader must rebuild it first`);
    } else if (writtenByFormat1(this.db)) {
      this.db.close().catch(() => undefined);
      throw new Error(`[egg-sonofs] a version of egg-sonofs older than format ${FORMAT_VERSION} wrote to the catalog in ${dir}; the leader must rebuild it first`);
    }
    // A version before format 2 refuses to start on it (lmdb-format.ts).
    guardAgainstFormat1(this.db);
    this.w = txnWrites<Buffer>(this.db);
  }

  async getBlob(sha1: string): Promise<BlobInfo | undefined> {
    const raw = sha1Bytes(sha1);
    return raw && this.blob(raw, sha1);
  }

  async getUserFile(user: string, sha1: string): Promise<UserFile | undefined> {
    const raw = sha1Bytes(sha1);
    const uid = this.userId(user);
    return raw && uid !== undefined ? this.userFile(user, uid, raw, sha1) : undefined;
  }

  async listUserFiles(user: string, limit: number): Promise<UserFile[]> {
    const out: UserFile[] = [];
    const uid = this.userId(user);
    if (uid === undefined) return out;
    for (const key of this.db.getKeys({ ...timeRange(uid), reverse: true })) {
      const { sha1, hex } = sha1OfTimeKey(key);
      const uf = this.userFile(user, uid, sha1, hex);
      if (uf) out.push(uf);
      if (out.length >= limit) break;
    }
    return out;
  }

  async commitUpload(c: UploadCommit, writeBlob: RecordWrite, writeLink: RecordWrite): Promise<UploadOutcome> {
    const sha1 = sha1Bytes(c.blob.sha1);
    if (!sha1) throw new RangeError(`${c.blob.sha1} is not a sha1 in hex`);
    return this.w.transaction(() => {
      const existing = this.blob(sha1, c.blob.sha1);
      if (existing?.fileId === c.blob.fileId) {
        // Run again after a commit that went through after all: the blob is this upload's own.
        const uid = this.userId(c.user);
        const link = (uid !== undefined && this.storedLink(uid, sha1)) || { name: c.name, at: c.blob.time, mtime: c.blob.time };
        return { blob: existing, link: { user: c.user, sha1: c.blob.sha1, ...link }, created: true };
      }
      const seq = this.bumpSeq();
      const uid = this.numberUser(c.user);
      if (existing) {
        writeLink(seq);
        const link = this.putLink(c.user, uid, sha1, c.blob.sha1, c.name, c.blob.time, c.blob.time, existing);
        return { blob: this.blob(sha1, c.blob.sha1)!, link, created: false };
      }
      writeBlob(seq);
      // New content: no link can point to it yet, so blob, link and time index are written once each.
      const blob: BlobInfo = { ...c.blob, refs: 1 };
      this.w.put(blobKey(sha1), encodeBlob(blob));
      return { blob, link: this.putNewLink(c.user, uid, sha1, c.blob.sha1, c.name, c.blob.time), created: true };
    });
  }

  async link(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    const raw = sha1Bytes(sha1);
    return this.w.transaction(() => {
      if (!raw || !this.db.getBinaryFast(blobKey(raw))) throw new NotFoundError('FILE_NOT_FOUND', `no stored content has sha1 ${sha1}`);
      const seq = this.bumpSeq();
      write(seq);
      const now = Date.now();
      const uid = this.numberUser(user);
      this.putLink(user, uid, raw, sha1, name, now, now);
      return this.userFile(user, uid, raw, sha1)!;
    });
  }

  async rename(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    const raw = sha1Bytes(sha1);
    return this.w.transaction(() => {
      const uid = this.userId(user);
      const link = raw && uid !== undefined ? this.storedLink(uid, raw) : undefined;
      if (!raw || uid === undefined || !link) throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
      write(this.bumpSeq());
      this.putLink(user, uid, raw, sha1, name, link.at, Date.now());
      return this.userFile(user, uid, raw, sha1)!;
    });
  }

  async unlink(user: string, sha1: string, write: RecordWrite): Promise<boolean> {
    const raw = sha1Bytes(sha1);
    return this.w.transaction(() => {
      const uid = this.userId(user);
      if (!raw || uid === undefined || !this.db.getBinaryFast(linkKey(uid, raw))) {
        throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
      }
      write(this.bumpSeq());
      return this.dropLink(uid, raw);
    });
  }

  async replay(records: ReplayRecord[], opts: ReplayOptions = {}): Promise<number> {
    const sorted = [ ...records ].sort((a, b) => a.seq - b.seq || a.time - b.time);
    const { rebuild } = opts;
    return this.w.transaction(() => {
      const from = decodeSeq(this.db.getBinaryFast(SEQ_KEY));
      let applied = 0;
      for (const r of sorted) {
        if (r.seq <= from) continue;
        this.applyRecord(r);
        this.w.put(SEQ_KEY, encodeSeq(r.seq));
        applied++;
      }
      if (rebuild?.last) this.w.del(REBUILD_KEY);
      else if (rebuild) this.w.put(REBUILD_KEY, Buffer.from([ rebuild.verifyData ? 1 : 0 ]));
      if (opts.allocState) this.w.put(ALLOC_KEY, encodeAlloc(opts.allocState));
      return applied;
    });
  }

  async isEmpty(): Promise<boolean> {
    // Look at three keys (the format's, the guard's and one more): counting them all read the whole map at every start.
    for (const key of this.db.getKeys({ limit: 3 })) if (!FORMAT_KEY.equals(key) && !FORMAT1_GUARD_KEY.equals(key)) return false;
    return true;
  }

  async anyBlob(): Promise<BlobInfo | undefined> {
    for (const { key, value } of this.db.getRange({ ...BLOBS, limit: 1 })) return decodeBlob(sha1OfBlobKey(key), value);
    return undefined;
  }

  async getAllocState(): Promise<AllocState | undefined> {
    const v = this.db.getBinaryFast(ALLOC_KEY);
    return v && decodeAlloc(v);
  }

  async recordLease(state: AllocState, lease: ExtentLease): Promise<void> {
    await this.w.transaction(() => {
      this.w.put(ALLOC_KEY, encodeAlloc(state));
      this.w.put(leaseKey(lease.bundle, lease.offset), encodeLease(lease));
    });
  }

  async closeLease(bundle: number, offset: number): Promise<void> {
    await this.w.transaction(() => this.w.del(leaseKey(bundle, offset)));
  }

  async openLeases(): Promise<ExtentLease[]> {
    return [ ...this.db.getRange(LEASES) ].map(e => decodeLease(e.key, e.value));
  }

  async durable(): Promise<void> {
    // Unsynced commits survive a process crash, and an OS crash rebuilds the catalog.
    await this.db.flushed;
  }

  /**
   * `last`: the leader at shutdown: sync, and mark the catalog clean unless
   * another live process still has it open (an agent stopped on its own while
   * workers go on: the marker must stay until the next agent sets it again).
   */
  async close(opts: { last?: boolean } = {}): Promise<void> {
    if (opts.last && this.bootId !== undefined) {
      await this.db.flushed;
      // env.sync (mdb_env_sync), not in lmdb's typings
      const env = this.db as unknown as { sync(cb: (err?: Error) => void): void };
      await new Promise<void>((resolve, reject) => env.sync(err => (err ? reject(err) : resolve())));
      const shared = this.otherLiveReaders();
      await this.db.close();
      if (!shared) clearUnsynced(this.dir);
      return;
    }
    await this.db.close();
  }

  /** Whether a live process other than this one has the environment open. */
  private otherLiveReaders(): boolean {
    return envHolders(this.dir, this.db.readerList()).length > 0;
  }

  // --- one code path for live operations and replay ---

  private applyRecord(r: ReplayRecord): void {
    const sha1 = sha1Bytes(r.sha1);
    if (!sha1) return;
    switch (r.kind) {
      case 'blob':
        if (!this.db.getBinaryFast(blobKey(sha1))) {
          this.w.put(blobKey(sha1), encodeBlob({ fileId: r.fileId!, size: r.size!, mime: r.mime!, time: r.time, refs: 0 }));
        }
        this.putLink(r.user, this.numberUser(r.user), sha1, r.sha1, r.name ?? '', r.time, r.time);
        break;
      case 'link':
        // A link to content that is gone (garbage collected) cannot be revived.
        if (this.db.getBinaryFast(blobKey(sha1))) {
          this.putLink(r.user, this.numberUser(r.user), sha1, r.sha1, r.name ?? '', r.at ?? r.time, r.time);
        }
        break;
      case 'unlink': {
        const uid = this.userId(r.user);
        if (uid !== undefined && this.db.getBinaryFast(linkKey(uid, sha1))) this.dropLink(uid, sha1);
        break;
      }
    }
  }

  private bumpSeq(): number {
    const seq = decodeSeq(this.db.getBinaryFast(SEQ_KEY)) + 1;
    this.w.put(SEQ_KEY, encodeSeq(seq));
    return seq;
  }

  // getBinaryFast answers in a buffer the next read reuses: each value is decoded at once.

  /** The user's number; undefined for a user who never had a file. */
  private userId(user: string): number | undefined {
    const v = this.db.getBinaryFast(userKey(user));
    return v && decodeUserId(v);
  }

  /** The user's number, given at the user's first link (inside a write transaction). */
  private numberUser(user: string): number {
    const known = this.userId(user);
    if (known !== undefined) return known;
    const count = this.db.getBinaryFast(USER_COUNT_KEY);
    const uid = count ? count.readUInt32BE(0) : 0;
    this.w.put(userKey(user), encodeUserId(uid));
    this.w.put(USER_COUNT_KEY, encodeU32(uid + 1));
    return uid;
  }

  private blob(sha1: Buffer, hex: string): BlobInfo | undefined {
    const v = this.db.getBinaryFast(blobKey(sha1));
    return v && decodeBlob(hex, v);
  }

  private storedLink(uid: number, sha1: Buffer): StoredLink | undefined {
    const v = this.db.getBinaryFast(linkKey(uid, sha1));
    return v && decodeLink(v);
  }

  /** Creates, revives or renames a link; counts a new link on its blob. */
  private putLink(user: string, uid: number, sha1: Buffer, hex: string, name: string, at: number, mtime: number, blob?: BlobInfo): LinkInfo {
    const old = this.storedLink(uid, sha1);
    if (old) {
      if (old.at === at) {
        this.w.put(linkKey(uid, sha1), encodeLink({ name, at, mtime }));
        return { user, sha1: hex, name, at, mtime };
      }
      this.w.del(timeKey(uid, old.at, sha1));
    } else {
      const b = blob ?? this.blob(sha1, hex)!;
      this.w.put(blobKey(sha1), encodeBlob({ ...b, refs: b.refs + 1 }));
    }
    return this.putNewLink(user, uid, sha1, hex, name, at, mtime);
  }

  /** The link and its time-index entry, for a user who has no link to this content. */
  private putNewLink(user: string, uid: number, sha1: Buffer, hex: string, name: string, at: number, mtime = at): LinkInfo {
    this.w.put(linkKey(uid, sha1), encodeLink({ name, at, mtime }));
    this.w.put(timeKey(uid, at, sha1), NO_VALUE);
    return { user, sha1: hex, name, at, mtime };
  }

  /** Removes a link; drops the blob when it was the last one. */
  private dropLink(uid: number, sha1: Buffer): boolean {
    const old = this.storedLink(uid, sha1)!;
    this.w.del(linkKey(uid, sha1));
    this.w.del(timeKey(uid, old.at, sha1));
    const blob = this.blob(sha1, '');
    if (!blob) return false;
    if (blob.refs <= 1) {
      this.w.del(blobKey(sha1));
      return true;
    }
    this.w.put(blobKey(sha1), encodeBlob({ ...blob, refs: blob.refs - 1 }));
    return false;
  }

  private userFile(user: string, uid: number, sha1: Buffer, hex: string): UserFile | undefined {
    const link = this.storedLink(uid, sha1);
    if (!link) return undefined;
    const blob = this.blob(sha1, hex);
    if (!blob) return undefined;
    return { user, sha1: hex, ...link, fileId: blob.fileId, size: blob.size, mime: blob.mime };
  }
}
