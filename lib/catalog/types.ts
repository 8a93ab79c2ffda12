/**
 * The metadata behind the store: the sha1 index (one entry per distinct
 * content) and per-user links (tbl_file and tbl_user_file in the course).
 * Embedded mode implements it on LMDB; cluster mode will implement the same
 * interface on Redis. Every mutation also appends a record to a bundle, from
 * inside the catalog's atomic section once the operation's `seq` is known, so
 * the catalog can always be rebuilt by replaying bundles in seq order.
 */
export interface BlobInfo {
  sha1: string;
  fileId: string;
  size: number;
  mime: string;
  /** when the content was first stored (ms) */
  time: number;
  /** number of user links; content with 0 links is garbage */
  refs: number;
}

export interface LinkInfo {
  user: string;
  sha1: string;
  name: string;
  /** when this user uploaded (or re-uploaded) the content (ms) */
  at: number;
  /** last change of the link (rename) (ms) */
  mtime: number;
}

/** A link joined with its content: what routes show. */
export interface UserFile extends LinkInfo {
  fileId: string;
  size: number;
  mime: string;
}

/** Writes the operation's record into its reserved slot, stamped with `seq`. Synchronous. */
export type RecordWrite = (seq: number) => void;

/** One decoded bundle record, as the scanner hands it to replay. */
export interface ReplayRecord {
  kind: 'blob' | 'link' | 'unlink';
  seq: number;
  time: number;
  sha1: string;
  user: string;
  name?: string;
  at?: number;
  /** blob records only */
  fileId?: string;
  size?: number;
  mime?: string;
}

export interface ReplayOptions {
  /**
   * The records are a batch of a rebuild from the bundles, which takes many
   * transactions. Until the batch marked `last` commits, the catalog says a
   * rebuild is under way (and whether it checks data), so a start after a kill
   * drops the partial catalog and rebuilds it again, as thoroughly.
   */
  rebuild?: { verifyData: boolean; last: boolean };
  /**
   * With the last batch of a replay of every bundle: the allocator position past
   * them all, so the next start does not take the catalog for one behind the
   * disk and replay every bundle again.
   */
  allocState?: AllocState;
}

export interface UploadCommit {
  user: string;
  name: string;
  /** the content this upload would create if the sha1 is new */
  blob: Omit<BlobInfo, 'refs'>;
}

export interface UploadOutcome {
  /** the live content (ours if created, the existing one if deduplicated) */
  blob: BlobInfo;
  link: LinkInfo;
  created: boolean;
}

export interface ExtentLease {
  bundle: number;
  offset: number;
  length: number;
  /** pid of the worker holding it */
  owner: number;
}

export interface AllocState {
  /** the shared bundle extents are currently cut from */
  bundle: number;
  /** next free extent offset in that bundle */
  next: number;
  /** next bundle number to create */
  nextBundle: number;
}

/**
 * The shared metadata: content and links. Embedded mode keeps it on LMDB;
 * cluster mode shares one across the nodes.
 *
 * A mutation appends its record to a bundle through a `RecordWrite` the
 * catalog calls once it knows the operation's seq and outcome. The backend
 * decides how that fits its atomicity: LMDB calls it inside its write
 * transaction; a backend without one (Redis) reads the state, takes a seq,
 * calls it, then commits only if the state it read is unchanged, and starts
 * over otherwise. So a write may run more than once, each time with a newer
 * seq (the caller's writes must allow it: store.ts commitRecord), and a crash
 * between write and commit leaves a record the catalog never took: recovery
 * replays it, completing an operation that was never acknowledged.
 */
export interface Catalog {
  getBlob(sha1: string): Promise<BlobInfo | undefined>;
  getUserFile(user: string, sha1: string): Promise<UserFile | undefined>;
  /** A user's files, newest upload first. */
  listUserFiles(user: string, limit: number): Promise<UserFile[]>;

  /**
   * Finishes an upload. If live content with the same sha1 exists, the user is
   * linked to it and `writeLink` runs; otherwise `writeBlob` commits the new
   * content. Exactly one of the two runs, inside the atomic section.
   */
  commitUpload(c: UploadCommit, writeBlob: RecordWrite, writeLink: RecordWrite): Promise<UploadOutcome>;
  /** Links a user to existing live content (秒传); NOT_FOUND if there is none. */
  link(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile>;
  rename(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile>;
  /** Removes the user's link; resolves true when the content lost its last link. */
  unlink(user: string, sha1: string, write: RecordWrite): Promise<boolean>;

  /**
   * Applies scanned records newer than what the catalog holds, in seq order (idempotent), in one transaction.
   * A catalog shared by nodes (Redis) applies each record only where it is newer than the record that last
   * set its key, since one node's records may be older than what another wrote; a rebuild there replays
   * every record of one node's bundles, and the nodes in any order.
   */
  replay(records: ReplayRecord[], opts?: ReplayOptions): Promise<number>;
  /** True when the catalog holds nothing (new or lost): rebuild from bundles. */
  isEmpty(): Promise<boolean>;
  /** Some stored content, any: its file id tells which node identity the store's ids carry. */
  anyBlob(): Promise<BlobInfo | undefined>;

  /** Resolves once every operation resolved so far is on disk (not just committed). */
  durable(): Promise<void>;

  /** `last`: no other process writes to it any more (the leader at shutdown). */
  close(opts?: { last?: boolean }): Promise<void>;
}

/**
 * Where this node's allocation leader cuts space, and which extents are
 * leased to its workers: node-local state (no other node writes these
 * bundles), kept on the node's own disk in every mode. Recovery replays the
 * leased extents after a crash, so a lease is recorded before it is used.
 */
export interface AllocationLedger {
  getAllocState(): Promise<AllocState | undefined>;
  /** Persists the allocator position and the new lease atomically. */
  recordLease(state: AllocState, lease: ExtentLease): Promise<void>;
  closeLease(bundle: number, offset: number): Promise<void>;
  openLeases(): Promise<ExtentLease[]>;
}
