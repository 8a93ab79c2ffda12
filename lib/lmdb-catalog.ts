import fs from 'node:fs';
import { open, RootDatabase } from 'lmdb';
import { NotFoundError } from './errors';
import { isAlive } from './pid';
import { txnWrites } from './lmdb-retry';
import { bootIdFrom, clearUnsynced, markUnsynced, tornByOsCrash } from './unsynced-marker';
import type {
  AllocState, BlobInfo, Catalog, ExtentLease, LinkInfo, RecordWrite, ReplayRecord,
  UploadCommit, UploadOutcome, UserFile,
} from './catalog';

type Key = (string | number)[];
interface StoredLink { name: string; at: number; mtime: number }

const SEQ: Key = [ 'seq' ];
const ALLOC: Key = [ 'alloc' ];
const blobKey = (sha1: string): Key => [ 'b', sha1 ];
const linkKey = (user: string, sha1: string): Key => [ 'l', user, sha1 ];
const timeKey = (user: string, at: number, sha1: string): Key => [ 't', user, at, sha1 ];
const leaseKey = (bundle: number, offset: number): Key => [ 'x', bundle, offset ];

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
 */
export class LmdbCatalog implements Catalog {
  private readonly db: RootDatabase;
  /**
   * Its writes. A transaction's callback may run more than once (a failed commit is tried
   * again): the record it writes is an overwrite, and store.ts refuses a retry that changes
   * a link into a blob.
   */
  private readonly w: ReturnType<typeof txnWrites<Key>>;
  /** the boot id marking the catalog unsynced, or undefined when commits are synced */
  private readonly bootId: string | undefined;

  /** `bootId`: this system's boot id (tests pretend reboots); null for synced commits. */
  constructor(readonly dir: string, opts: { bootId?: string | null } = {}) {
    this.bootId = bootIdFrom(opts.bootId);
    if (this.bootId !== undefined && tornByOsCrash(dir, this.bootId)) {
      throw new Error(`[egg-sonofs] the catalog in ${dir} was open when the system went down; the leader must rebuild it first`);
    }
    fs.mkdirSync(dir, { recursive: true });
    if (this.bootId !== undefined) markUnsynced(dir, this.bootId);
    this.db = open({ path: dir, compression: false, noSync: this.bootId !== undefined });
    this.w = txnWrites<Key>(this.db);
  }

  async getBlob(sha1: string): Promise<BlobInfo | undefined> {
    return this.db.get(blobKey(sha1));
  }

  async getUserFile(user: string, sha1: string): Promise<UserFile | undefined> {
    return this.userFile(user, sha1);
  }

  async listUserFiles(user: string, limit: number): Promise<UserFile[]> {
    const out: UserFile[] = [];
    const range = this.db.getKeys({ start: [ 't', user, '\uffff' ], end: [ 't', user ], reverse: true });
    for (const key of range) {
      const uf = this.userFile(user, (key as Key)[3] as string);
      if (uf) out.push(uf);
      if (out.length >= limit) break;
    }
    return out;
  }

  async commitUpload(c: UploadCommit, writeBlob: RecordWrite, writeLink: RecordWrite): Promise<UploadOutcome> {
    return this.w.transaction(() => {
      const existing: BlobInfo | undefined = this.db.get(blobKey(c.blob.sha1));
      if (existing?.fileId === c.blob.fileId) {
        // Run again after a commit that went through after all: the blob is this upload's own.
        const link: StoredLink = this.db.get(linkKey(c.user, c.blob.sha1)) ?? { name: c.name, at: c.blob.time, mtime: c.blob.time };
        return { blob: existing, link: { user: c.user, sha1: c.blob.sha1, ...link }, created: true };
      }
      const seq = this.bumpSeq();
      if (existing) {
        writeLink(seq);
        const link = this.putLink(c.user, c.blob.sha1, c.name, c.blob.time, c.blob.time, existing);
        return { blob: this.db.get(blobKey(c.blob.sha1)), link, created: false };
      }
      writeBlob(seq);
      // New content: no link can point to it yet, so blob, link and time index are written once each.
      const blob: BlobInfo = { ...c.blob, refs: 1 };
      this.w.put(blobKey(c.blob.sha1), blob);
      return { blob, link: this.putNewLink(c.user, c.blob.sha1, c.name, c.blob.time), created: true };
    });
  }

  async link(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    return this.w.transaction(() => {
      if (!this.db.get(blobKey(sha1))) throw new NotFoundError('FILE_NOT_FOUND', `no stored content has sha1 ${sha1}`);
      const seq = this.bumpSeq();
      write(seq);
      const now = Date.now();
      this.putLink(user, sha1, name, now, now);
      return this.userFile(user, sha1)!;
    });
  }

  async rename(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    return this.w.transaction(() => {
      const link: StoredLink | undefined = this.db.get(linkKey(user, sha1));
      if (!link) throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
      write(this.bumpSeq());
      this.putLink(user, sha1, name, link.at, Date.now());
      return this.userFile(user, sha1)!;
    });
  }

  async unlink(user: string, sha1: string, write: RecordWrite): Promise<boolean> {
    return this.w.transaction(() => {
      if (!this.db.get(linkKey(user, sha1))) throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
      write(this.bumpSeq());
      return this.dropLink(user, sha1);
    });
  }

  async replay(records: ReplayRecord[]): Promise<number> {
    const sorted = [ ...records ].sort((a, b) => a.seq - b.seq || a.time - b.time);
    return this.w.transaction(() => {
      const from: number = this.db.get(SEQ) ?? 0;
      let applied = 0;
      for (const r of sorted) {
        if (r.seq <= from) continue;
        this.applyRecord(r);
        this.w.put(SEQ, r.seq);
        applied++;
      }
      return applied;
    });
  }

  async isEmpty(): Promise<boolean> {
    // Look at one key: counting them all read the whole map (650 MiB for a million files) at every start.
    for (const _key of this.db.getKeys({ limit: 1 })) return false;
    return true;
  }

  async anyBlob(): Promise<BlobInfo | undefined> {
    for (const { value } of this.db.getRange({ start: [ 'b' ], end: [ 'b', '\uffff' ], limit: 1 })) return value as BlobInfo;
    return undefined;
  }

  async getAllocState(): Promise<AllocState | undefined> {
    return this.db.get(ALLOC);
  }

  async recordLease(state: AllocState, lease: ExtentLease): Promise<void> {
    await this.w.transaction(() => {
      this.w.put(ALLOC, state);
      this.w.put(leaseKey(lease.bundle, lease.offset), lease);
    });
  }

  async closeLease(bundle: number, offset: number): Promise<void> {
    await this.w.transaction(() => this.w.del(leaseKey(bundle, offset)));
  }

  async openLeases(): Promise<ExtentLease[]> {
    return [ ...this.db.getRange({ start: [ 'x' ], end: [ 'x', '\uffff' ] }) ].map(e => e.value as ExtentLease);
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

  /** Whether a live process other than this one has the environment open (LMDB's reader table). */
  private otherLiveReaders(): boolean {
    const pids = [ ...this.db.readerList().matchAll(/^\s*(\d+)\s/gm) ].map(m => Number(m[1]));
    return pids.some(pid => pid !== process.pid && isAlive(pid));
  }

  // --- one code path for live operations and replay ---

  private applyRecord(r: ReplayRecord): void {
    switch (r.kind) {
      case 'blob':
        if (!this.db.get(blobKey(r.sha1))) {
          this.w.put(blobKey(r.sha1), {
            sha1: r.sha1, fileId: r.fileId!, size: r.size!, mime: r.mime!, time: r.time, refs: 0,
          } satisfies BlobInfo);
        }
        this.putLink(r.user, r.sha1, r.name ?? '', r.time, r.time);
        break;
      case 'link':
        // A link to content that is gone (garbage collected) cannot be revived.
        if (this.db.get(blobKey(r.sha1))) this.putLink(r.user, r.sha1, r.name ?? '', r.at ?? r.time, r.time);
        break;
      case 'unlink':
        if (this.db.get(linkKey(r.user, r.sha1))) this.dropLink(r.user, r.sha1);
        break;
    }
  }

  private bumpSeq(): number {
    const seq = (this.db.get(SEQ) ?? 0) + 1;
    this.w.put(SEQ, seq);
    return seq;
  }

  /** Creates, revives or renames a link; counts a new link on its blob. */
  private putLink(user: string, sha1: string, name: string, at: number, mtime: number, blob?: BlobInfo): LinkInfo {
    const old: StoredLink | undefined = this.db.get(linkKey(user, sha1));
    if (old) {
      if (old.at === at) {
        this.w.put(linkKey(user, sha1), { name, at, mtime } satisfies StoredLink);
        return { user, sha1, name, at, mtime };
      }
      this.w.del(timeKey(user, old.at, sha1));
    } else {
      const b: BlobInfo = blob ?? this.db.get(blobKey(sha1));
      this.w.put(blobKey(sha1), { ...b, refs: b.refs + 1 });
    }
    return this.putNewLink(user, sha1, name, at, mtime);
  }

  /** The link and its time-index entry, for a user who has no link to this content. */
  private putNewLink(user: string, sha1: string, name: string, at: number, mtime = at): LinkInfo {
    this.w.put(linkKey(user, sha1), { name, at, mtime } satisfies StoredLink);
    this.w.put(timeKey(user, at, sha1), 1);
    return { user, sha1, name, at, mtime };
  }

  /** Removes a link; drops the blob when it was the last one. */
  private dropLink(user: string, sha1: string): boolean {
    const old: StoredLink = this.db.get(linkKey(user, sha1));
    this.w.del(linkKey(user, sha1));
    this.w.del(timeKey(user, old.at, sha1));
    const blob: BlobInfo | undefined = this.db.get(blobKey(sha1));
    if (!blob) return false;
    if (blob.refs <= 1) {
      this.w.del(blobKey(sha1));
      return true;
    }
    this.w.put(blobKey(sha1), { ...blob, refs: blob.refs - 1 });
    return false;
  }

  private userFile(user: string, sha1: string): UserFile | undefined {
    const link: StoredLink | undefined = this.db.get(linkKey(user, sha1));
    if (!link) return undefined;
    const blob: BlobInfo | undefined = this.db.get(blobKey(sha1));
    if (!blob) return undefined;
    return { user, sha1, ...link, fileId: blob.fileId, size: blob.size, mime: blob.mime };
  }
}
