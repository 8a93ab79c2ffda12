import type {
  BlobInfo, Catalog, RecordWrite, ReplayOptions, ReplayRecord, UploadCommit, UploadOutcome, UserFile,
} from './types';
import { StoredLink, sha1Bytes } from './lmdb-encoding';
import { StoredContent, StoredLinkState, decodeContent, decodeLinkState, encodeContent, encodeLinkState, userBytes } from './redis-encoding';
import { NotFoundError, UnavailableError } from '../errors';
import { ANY, CasKeys, CasStep, cas, defineCas } from './redis-cas';
import { RedisClient, retryCompareAndSet } from './redis-client';
import { guardRedis } from './redis-guard';

export interface RedisCatalogOptions {
  /** what every key begins with, in a hash tag: several stores can share one Redis (default 'sonofs') */
  namespace?: string;
  /** hex digits of the sha1 that pick a content's bucket (default 3: 4,096 buckets) */
  bucketDigits?: number;
  /** the node whose bundles this handle replays (liveness.ts nodeName; default '-') */
  node?: string;
  /** a Redis call that takes longer fails with MetadataUnavailableError (ms; default 2000): see redis-guard.ts */
  callTimeoutMs?: number;
}

/** What a mutation read: the raw values (which its commit expects unchanged), decoded, and its seq. */
interface Read {
  bv: Buffer | null;
  lv: Buffer | null;
  seq?: number;
  content?: StoredContent;
  held?: StoredLinkState;
}

/** What an operation on a malformed sha1 reads. */
const NOTHING: Read = { bv: null, lv: null };

/** A mutation whose state kept changing under it gives up after this many tries. */
const MAX_TRIES = 50;

/**
 * The catalog on Redis, shared by every node of a cluster (cluster mode).
 * Keys, all under one hash tag so a mutation's keys are in one slot:
 *   {ns}:s            seq: the last one taken (INCR), across the nodes
 *   {ns}:a:<node>     the newest seq of that node's records in the catalog: a replay of its
 *                     bundles skips those up to it (as LMDB's seq does on one node)
 *   {ns}:r:<node>     a rebuild of that node's records under way ('1' when it checks data)
 *   {ns}:b:<hex>      hash: sha1 (20 bytes) → refs ':' blob (redis-encoding.ts StoredContent)
 *   {ns}:l:<user>     hash: sha1 → seq ':' link, or a deleted link's tombstone (StoredLinkState)
 *   {ns}:t:<user>     sorted set: sha1 scored by the link's `at` (newest first, as on LMDB)
 * Contents are grouped in buckets by the start of their sha1, so Redis keeps
 * small hashes packed (listpack) instead of paying a key per content.
 * A mutation reads, takes a seq, writes its record, then commits with a
 * compare-and-set script (redis-cas.ts), and starts over if another got there
 * first.
 */
export class RedisCatalog implements Catalog {
  private readonly tag: string;
  private readonly digits: number;
  private readonly seqKey: Buffer;
  private readonly markKey: Buffer;
  private readonly rebuildKey: Buffer;
  private readonly redis: RedisClient;

  constructor(client: RedisClient, opts: RedisCatalogOptions = {}) {
    // every call fails as MetadataUnavailableError, soon, while Redis is away
    this.redis = guardRedis(client, opts.callTimeoutMs);
    this.tag = `{${opts.namespace ?? 'sonofs'}}`;
    this.digits = opts.bucketDigits ?? 3;
    this.seqKey = Buffer.from(`${this.tag}:s`);
    this.markKey = Buffer.from(`${this.tag}:a:${opts.node ?? '-'}`);
    this.rebuildKey = Buffer.from(`${this.tag}:r:${opts.node ?? '-'}`);
    defineCas(this.redis);
  }

  async getBlob(sha1: string): Promise<BlobInfo | undefined> {
    const raw = sha1Bytes(sha1);
    return raw && decodeContent(sha1, await this.redis.hgetBuffer(this.bucket(sha1), raw))?.blob;
  }

  async getUserFile(user: string, sha1: string): Promise<UserFile | undefined> {
    const raw = sha1Bytes(sha1);
    if (!raw) return undefined;
    const [ lv, bv ] = await Promise.all([ this.redis.hgetBuffer(this.linksKey(user), raw), this.redis.hgetBuffer(this.bucket(sha1), raw) ]);
    return this.userFile(user, sha1, lv, bv);
  }

  async listUserFiles(user: string, limit: number): Promise<UserFile[]> {
    if (limit <= 0) return [];
    const sha1s = await this.redis.zrevrangeBuffer(this.timesKey(user), 0, limit - 1);
    const files = await Promise.all(sha1s.map(raw => this.getUserFile(user, raw.toString('hex'))));
    return files.filter((f): f is UserFile => f !== undefined);
  }

  async commitUpload(c: UploadCommit, writeBlob: RecordWrite, writeLink: RecordWrite): Promise<UploadOutcome> {
    const raw = sha1Bytes(c.blob.sha1);
    if (!raw) throw new RangeError(`${c.blob.sha1} is not a sha1 in hex`);
    return this.retry(async () => {
      const { bv, lv, seq, content, held } = await this.read(c.user, c.blob.sha1, raw, true);
      const existing = content?.blob;
      const old = held?.link;
      if (existing?.fileId === c.blob.fileId) {
        // Run again after a commit that went through after all: the blob is this upload's own.
        const link = old ?? { name: c.name, at: c.blob.time, mtime: c.blob.time };
        return { blob: existing, link: { user: c.user, sha1: c.blob.sha1, ...link }, created: true };
      }
      const link: StoredLink = { name: c.name, at: c.blob.time, mtime: c.blob.time };
      const refs = (content?.refs ?? 0) + (old ? 0 : 1);
      if (existing) {
        writeLink(seq!);
        const blob = { ...existing, refs };
        if (!await this.cas(c.user, c.blob.sha1, { seq, sha1: raw, expectBlob: bv!, expectLink: lv ?? undefined, blob: encodeContent(refs, blob), link: encodeLinkState(seq!, link), at: link.at })) return undefined;
        return { blob, link: { user: c.user, sha1: c.blob.sha1, ...link }, created: false };
      }
      writeBlob(seq!);
      // a placeholder's links stay counted (redis-encoding.ts)
      const blob: BlobInfo = { ...c.blob, refs };
      if (!await this.cas(c.user, c.blob.sha1, { seq, sha1: raw, expectBlob: bv ?? undefined, expectLink: lv ?? undefined, blob: encodeContent(refs, blob), link: encodeLinkState(seq!, link), at: link.at })) return undefined;
      return { blob, link: { user: c.user, sha1: c.blob.sha1, ...link }, created: true };
    });
  }

  async link(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    const raw = sha1Bytes(sha1);
    return this.retry(async () => {
      const { bv, lv, seq, content, held } = raw ? await this.read(user, sha1, raw, true) : NOTHING;
      const blob = content?.blob;
      if (!raw || !blob) throw new NotFoundError('FILE_NOT_FOUND', `no stored content has sha1 ${sha1}`);
      write(seq!);
      const now = Date.now();
      const link: StoredLink = { name, at: now, mtime: now };
      const after = held?.link ? blob : { ...blob, refs: blob.refs + 1 };
      if (!await this.cas(user, sha1, { seq, sha1: raw, expectBlob: bv!, expectLink: lv ?? undefined, blob: encodeContent(after.refs, after), link: encodeLinkState(seq!, link), at: now })) return undefined;
      return joined(user, sha1, link, after);
    });
  }

  async rename(user: string, sha1: string, name: string, write: RecordWrite): Promise<UserFile> {
    const raw = sha1Bytes(sha1);
    return this.retry(async () => {
      const { bv, lv, seq, content, held } = raw ? await this.read(user, sha1, raw, true) : NOTHING;
      const blob = content?.blob;
      if (!raw || !held?.link || !blob) throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
      write(seq!);
      const link = { ...held.link, name, mtime: Date.now() };
      if (!await this.cas(user, sha1, { seq, sha1: raw, expectBlob: bv!, expectLink: lv!, blob: ANY, link: encodeLinkState(seq!, link) })) return undefined;
      return joined(user, sha1, link, blob);
    });
  }

  async unlink(user: string, sha1: string, write: RecordWrite): Promise<boolean> {
    const raw = sha1Bytes(sha1);
    return this.retry(async () => {
      const { bv, lv, seq, content, held } = raw ? await this.read(user, sha1, raw, true) : NOTHING;
      if (!raw || !held?.link) throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
      write(seq!);
      const step = this.dropStep(raw, content, bv, lv!, seq!);
      if (!await this.cas(user, sha1, step)) return undefined;
      return step.blob === undefined && content?.blob !== undefined;
    });
  }

  /**
   * Applies records in seq order. A live node's replay (start-up recovery of
   * its leased extents) skips those up to its mark; a rebuild (`opts.rebuild`:
   * the reindex of a node's bundles) takes them all. Either way each record
   * changes a user's link only if it is newer than the record that last set
   * it, so a replay never undoes a later change made through another node, and
   * the nodes' bundles can be replayed in any order.
   */
  async replay(records: ReplayRecord[], opts: ReplayOptions = {}): Promise<number> {
    const sorted = [ ...records ].sort((a, b) => a.seq - b.seq || a.time - b.time);
    if (opts.rebuild && !opts.rebuild.last) await this.redis.set(this.rebuildKey, opts.rebuild.verifyData ? '1' : '0');
    let applied = 0;
    for (const r of sorted) {
      // a node's records reach the catalog in seq order: those up to its mark are in
      if (!opts.rebuild && r.seq <= Number(await this.redis.get(this.markKey) ?? 0)) continue;
      const raw = sha1Bytes(r.sha1);
      // a record with no valid sha1 still moves the mark, as on LMDB
      await this.retry(async () => (await this.applyRecord(r, raw, !!opts.rebuild) ? true : undefined));
      applied++;
    }
    if (opts.rebuild?.last) await this.redis.del(this.rebuildKey);
    return applied;
  }

  async isEmpty(): Promise<boolean> {
    return await this.redis.exists(this.seqKey) === 0;
  }

  async anyBlob(): Promise<BlobInfo | undefined> {
    for (let b = 0; b < 16 ** this.digits; b += 256) {
      const buckets = Array.from({ length: Math.min(256, 16 ** this.digits - b) }, (_, i) => this.bucketKey((b + i).toString(16).padStart(this.digits, '0')));
      const sizes = await Promise.all(buckets.map(k => this.redis.hlen(k)));
      for (const [ i, n ] of sizes.entries()) {
        if (n === 0) continue;
        const blob = await this.firstBlobIn(buckets[i]);
        if (blob) return blob;
      }
    }
    return undefined;
  }

  /** The first content of a bucket that is not a placeholder. */
  private async firstBlobIn(bucket: Buffer): Promise<BlobInfo | undefined> {
    // the raw reply (field, value pairs): HGETALL's object would turn binary sha1 fields into text
    for (let cursor = '0'; ;) {
      const [ next, pairs ] = await this.redis.hscanBuffer(bucket, cursor, 'COUNT', 16);
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        const blob = decodeContent(pairs[i].toString('hex'), pairs[i + 1])?.blob;
        if (blob) return blob;
      }
      cursor = next.toString();
      if (cursor === '0') return undefined;
    }
  }

  /** Whether a rebuild from the bundles was cut short, and whether it checked data. */
  async unfinishedRebuild(): Promise<{ verifyData: boolean } | undefined> {
    const v = await this.redis.get(this.rebuildKey);
    return v === null ? undefined : { verifyData: v === '1' };
  }

  async durable(): Promise<void> {
    // Redis persists on its own schedule; the bundles are the source of truth and rebuild it.
  }

  async close(): Promise<void> {
    // The client is the app's (egg-redis): it closes it.
  }

  // --- one code path for live operations and replay ---

  /** Applies one record of a replay with its seq, in one step; false if the state changed under it. */
  private async applyRecord(r: ReplayRecord, raw: Buffer | undefined, rebuild: boolean): Promise<boolean> {
    if (!raw) return this.casSeqOnly(r.seq);
    const { bv, lv, content, held } = await this.read(r.user, r.sha1, raw, false);
    const newer = !held || held.seq < r.seq;
    const fromRecord = r.kind === 'blob' ? { sha1: r.sha1, fileId: r.fileId!, size: r.size!, mime: r.mime!, time: r.time } : undefined;
    switch (r.kind) {
      case 'blob':
      case 'link': {
        if (!newer) {
          // the link holds a newer record; a placeholder still takes the content of a blob record
          if (!fromRecord || !content || content.blob) return this.casSeqOnly(r.seq);
          return this.cas(r.user, r.sha1, { seq: r.seq, sha1: raw, expectBlob: bv!, expectLink: ANY, blob: encodeContent(content.refs, fromRecord), link: ANY });
        }
        // A link to content that is gone cannot be revived; a rebuild keeps it (placeholder): the content's record may be in bundles replayed later.
        if (!content && !fromRecord && !rebuild) return this.casSeqOnly(r.seq);
        const at = r.kind === 'link' ? r.at ?? r.time : r.time;
        const link: StoredLink = { name: r.name ?? '', at, mtime: r.time };
        const refs = (content?.refs ?? 0) + (held?.link ? 0 : 1);
        // live content stays as it is: a later blob record of it was never committed (or content stored again, see README)
        const blob = content?.blob ?? fromRecord;
        return this.cas(r.user, r.sha1, { seq: r.seq, sha1: raw, expectBlob: bv ?? undefined, expectLink: lv ?? undefined, blob: encodeContent(refs, blob), link: encodeLinkState(r.seq, link), at });
      }
      case 'unlink':
        if (!newer) return this.casSeqOnly(r.seq);
        return this.cas(r.user, r.sha1, this.dropStep(raw, content, bv, lv, r.seq));
    }
  }

  /** Removes a link, leaving its tombstone; the content loses a ref, or goes with its last one. */
  private dropStep(raw: Buffer, content: StoredContent | undefined, bv: Buffer | null, lv: Buffer | null, seq: number): CasStep {
    const counted = decodeLinkState(lv)?.link !== undefined;
    const blob = !content || !counted ? ANY : content.refs <= 1 ? undefined : encodeContent(content.refs - 1, content.blob);
    return { sha1: raw, expectBlob: bv ?? undefined, expectLink: lv ?? undefined, blob, link: encodeLinkState(seq), at: null, seq };
  }

  private casSeqOnly(seq: number): Promise<boolean> {
    // any user's keys do: the step changes nothing but the seq
    return this.cas('', '0'.repeat(40), { sha1: Buffer.alloc(20), expectBlob: ANY, expectLink: ANY, blob: ANY, link: ANY, seq });
  }

  /** The content and link as they are now, and (for a live mutation) a new seq, in one round trip. */
  private async read(user: string, sha1: string, raw: Buffer, takeSeq: boolean): Promise<Read> {
    const [ bv, lv, seq ] = await Promise.all([
      this.redis.hgetBuffer(this.bucket(sha1), raw),
      this.redis.hgetBuffer(this.linksKey(user), raw),
      takeSeq ? this.redis.incr(this.seqKey) : undefined,
    ]);
    return { bv, lv, seq, content: decodeContent(sha1, bv), held: decodeLinkState(lv) };
  }

  private cas(user: string, sha1: string, step: CasStep): Promise<boolean> {
    const keys: CasKeys = { blobs: this.bucket(sha1), links: this.linksKey(user), times: this.timesKey(user), seq: this.seqKey, mark: this.markKey };
    return cas(this.redis, keys, step);
  }

  /** Runs an attempt until it commits (answers something) or keeps losing to other writers, backing off between tries. */
  private retry<T>(attempt: () => Promise<T | undefined>): Promise<T> {
    return retryCompareAndSet(async () => {
      const done = await attempt();
      return done === undefined ? undefined : { value: done };
    }, () => new UnavailableError('CATALOG_CONTENDED', 'the catalog kept changing under this operation; send it again'), MAX_TRIES);
  }

  private userFile(user: string, sha1: string, lv: Buffer | null, bv: Buffer | null): UserFile | undefined {
    const link = decodeLinkState(lv)?.link;
    const blob = decodeContent(sha1, bv)?.blob;
    return link && blob ? joined(user, sha1, link, blob) : undefined;
  }

  private bucket(sha1: string): Buffer {
    return this.bucketKey(sha1.slice(0, this.digits));
  }

  private bucketKey(hex: string): Buffer {
    return Buffer.from(`${this.tag}:b:${hex}`);
  }

  private linksKey(user: string): Buffer {
    return Buffer.concat([ Buffer.from(`${this.tag}:l:`), userBytes(user) ]);
  }

  private timesKey(user: string): Buffer {
    return Buffer.concat([ Buffer.from(`${this.tag}:t:`), userBytes(user) ]);
  }
}

function joined(user: string, sha1: string, link: StoredLink, blob: BlobInfo): UserFile {
  return { user, sha1, ...link, fileId: blob.fileId, size: blob.size, mime: blob.mime };
}
