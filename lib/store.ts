import fs from 'node:fs';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { BundleFiles } from './bundle/files';
import type { Catalog, UploadOutcome, UserFile } from './catalog/types';
import {
  BadRequestError, CorruptRecordError, FileTooLargeError, MetadataUnavailableError, NotFoundError, OtherNodeFileError, SonofsError,
} from './errors';
import { decodeFileId, encodeFileId, FileLocation, newCookie } from './bundle/file-id';
import { mimeCode, resolveMime } from './mime';
import { checkRead, fileNotFound } from './read-check';
import { hashChunks, readUpTo, writeData } from './upload-data';
import {
  HEADER_SIZE, RecordKind, crc32c, decodeHeader, encodeHeader, encodeMeta, encodeSmallRecord, RecordHeader,
} from './bundle/record';
import { SlotWriter, ExtentSource } from './bundle/slot-writer';
import { RecordReadStream } from './bundle/record-stream';
import type {
  CopyRecord, FileStat, ReadRange, RecordSpace, SpaceCommit, StoreOptions, StoredFile, UploadOptions, UploadResult,
} from './store-types';
import { checkName, checkUser, MAX_NAME_BYTES } from './validate';

export * from './store-types';

const read = promisify(fs.read);

/** Files up to this size are read whole before space is reserved, and written with one call. */
const SMALL_FILE = 64 << 10;

interface RecordToCommit {
  user: string;
  name: string;
  mime: string;
  size: number;
  sha1: Buffer;
  crc: number;
  blobMeta: Buffer;
  time: number;
}

/**
 * Bytes a session reserves after its data for the blob meta (user, name,
 * mime as JSON; names are capped at MAX_NAME_BYTES) and for a link record.
 */
export const SMALL_RECORD_MAX = 1024 + 4 * MAX_NAME_BYTES;

/**
 * The storage engine of one node, used by every worker: streams uploads into
 * slots of the worker's extent, deduplicates by sha1 through the catalog, and
 * serves reads straight from the location in the file id.
 */
export class SonofsStore {
  readonly files: BundleFiles;
  readonly writer: SlotWriter;
  private readonly probeSize: number;
  readonly maxBufferSize: number;

  constructor(readonly opts: StoreOptions, readonly catalog: Catalog, source: ExtentSource, private readonly copyRecord?: CopyRecord) {
    this.files = new BundleFiles(opts.root);
    this.writer = new SlotWriter(this.files, source, opts.extentSize);
    this.probeSize = opts.probeSize ?? 1 << 20;
    this.maxBufferSize = opts.maxBufferSize ?? 64 << 20;
  }

  /** Stores a stream; resolves once the file is durable and indexed. */
  async upload(source: Readable, o: UploadOptions): Promise<UploadResult> {
    try {
      return await this.uploadInner(source, o);
    } catch (err) {
      // Never leave the client's stream half-read and paused.
      if (!source.destroyed) source.destroy();
      throw err;
    }
  }

  private async uploadInner(source: Readable, o: UploadOptions): Promise<UploadResult> {
    const user = checkUser(o.user);
    const name = checkName(o.filename);
    const mime = resolveMime(o.mime, name);
    const { maxFileSize } = this.opts;
    if (o.size !== undefined && (!Number.isSafeInteger(o.size) || o.size < 0)) {
      throw new BadRequestError('INVALID_SIZE', 'size must be a non-negative integer');
    }
    if (o.size !== undefined && o.size > maxFileSize) throw new FileTooLargeError(maxFileSize);

    let head: Buffer[] = [];
    let whole = false;
    let bound = o.size ?? (o.sizeBound !== undefined ? Math.min(o.sizeBound, maxFileSize) : undefined);
    if (bound === undefined || bound <= SMALL_FILE) {
      // A short stream is read whole first (bounded) and sized exactly, then
      // written with one call. Unknown length: a long stream gets a sparse
      // lease as large as a file may be.
      const probe = await readUpTo(source, Math.min(bound === undefined ? this.probeSize : SMALL_FILE, maxFileSize));
      if (probe.length > maxFileSize) throw new FileTooLargeError(maxFileSize);
      head = probe.chunks;
      whole = probe.ended;
      if (whole) bound = probe.length;
      else bound ??= maxFileSize;
    }

    const time = Date.now();
    const blobMeta = encodeMeta({ u: user, n: name, m: mime });
    const linkMeta = encodeMeta({ u: user, n: name, at: time });
    // A file in memory is hashed first, then written with its Pending header in one call.
    const hashed = whole ? hashChunks(head) : undefined;
    const slot = await this.writer.reserve(HEADER_SIZE + bound + Math.max(blobMeta.length, linkMeta.length), whole ? [ ...head, blobMeta ] : []);
    let committed = false;
    try {
      const exceeded = o.size !== undefined
        ? () => new BadRequestError('SIZE_MISMATCH', `the upload is longer than its declared size ${o.size}`)
        : bound < maxFileSize && o.sizeBound !== undefined && o.sizeBound <= maxFileSize
          ? () => new BadRequestError('SIZE_MISMATCH', 'the upload is longer than its Content-Length')
          : () => new FileTooLargeError(maxFileSize);
      const data = hashed ?? await writeData(slot, head, source, bound, exceeded, this.opts.fsync);
      if (o.size !== undefined && data.size !== o.size) {
        throw new BadRequestError('SIZE_MISMATCH', `received ${data.size} bytes but the declared size is ${o.size}`);
      }
      if (!whole) await slot.write(blobMeta, HEADER_SIZE + data.size);

      const record = { user, name, mime, size: data.size, sha1: data.sha1, crc: data.crc, blobMeta, time };
      let wrote = false;
      const outcome = await this.commitRecord(slot, record, () => (wrote = true)).catch(err => {
        // the catalog may hold the commit after all (its answer was lost): the record it would name stays
        committed = wrote && err instanceof MetadataUnavailableError && err.maybeApplied;
        throw err;
      });
      committed = true;
      const result = await this.acknowledge(slot.bundle, outcome, record);
      // A duplicate became a link record at the slot's start; the rest of the slot is never cut again.
      if (!outcome.created) await slot.releaseAfter(HEADER_SIZE + SMALL_RECORD_MAX);
      return result;
    } finally {
      if (committed) slot.finish();
      else await slot.abort();
    }
  }

  /**
   * Makes data already written into `space` (after the header, followed by
   * its blob meta) a file: reserved by a resumable upload session, possibly in
   * another process. Its lease may be closed by now, so recovery would not
   * rescan it: the catalog's own flush is awaited too.
   */
  async commitSpace(space: RecordSpace, c: SpaceCommit): Promise<UploadResult> {
    const user = checkUser(c.user);
    const name = checkName(c.filename);
    const mime = resolveMime(c.mime, name);
    const time = Date.now();
    const blobMeta = encodeMeta({ u: user, n: name, m: mime });
    if (HEADER_SIZE + c.size + Math.max(blobMeta.length, SMALL_RECORD_MAX) > space.length) {
      throw new BadRequestError('FILENAME_TOO_LONG', 'the file name does not fit the space reserved for this upload');
    }
    space.writeSync(blobMeta, HEADER_SIZE + c.size);
    const record = { user, name, mime, size: c.size, sha1: c.sha1, crc: c.crc, blobMeta, time };
    const outcome = await this.commitRecord(space, record);
    const result = await this.acknowledge(space.bundle, outcome, record);
    await this.catalog.durable();
    return result;
  }

  /** The catalog operation that turns written data into a blob record, or into a link when the content exists. */
  private commitRecord(space: RecordSpace, r: RecordToCommit, wrote?: () => void): Promise<UploadOutcome> {
    const sha1 = r.sha1.toString('hex');
    const cookie = newCookie();
    const code = mimeCode(r.mime);
    const fileId = encodeFileId({
      group: this.opts.group, server: this.opts.server, bundle: space.bundle, offset: space.offset,
      size: r.size, mimeCode: code, cookie,
    });
    // A failed commit is tried again (lmdb-retry.ts) and may then take the other branch. Link after blob
    // is fine (a header rewritten); blob after link is not: the link record's meta overwrote the start
    // of the data, so that attempt fails the upload instead.
    let wroteLink = false;
    return this.catalog.commitUpload(
      { user: r.user, name: r.name, blob: { sha1, fileId, size: r.size, mime: r.mime, time: r.time } },
      seq => {
        wrote?.();
        if (wroteLink) throw new SonofsError(503, 'COMMIT_RETRY_CONFLICT', 'the catalog failed a commit and the content changed meanwhile; send the upload again');
        const used = HEADER_SIZE + r.size + r.blobMeta.length;
        space.writeSync(encodeHeader({
          kind: RecordKind.Blob, mimeCode: code, slotLen: space.shrinkTo(used), dataLen: r.size, seq, time: r.time, cookie,
          metaLen: r.blobMeta.length, sha1: r.sha1, dataCrc: r.crc, metaCrc: crc32c(r.blobMeta),
        }));
      },
      seq => {
        // Same content already stored: this space becomes the user's link record.
        wroteLink = true;
        wrote?.();
        const rec = { kind: RecordKind.Link, mimeCode: 0, seq, time: r.time, cookie: 0, sha1: r.sha1 };
        const meta = { u: r.user, n: r.name, at: r.time };
        // The link keeps the slot's length: the upload's bytes after it stay covered.
        space.writeSync(encodeSmallRecord({ ...rec, slotLen: space.length }, meta));
      },
    );
  }

  /** Waits until a committed upload is durable, then describes it. */
  private async acknowledge(bundle: number, outcome: UploadOutcome, r: RecordToCommit): Promise<UploadResult> {
    // A duplicate's bytes may sit unsynced in another bundle (another
    // worker's upload, committed but not yet acknowledged): sync that too.
    await this.durable(bundle, outcome.created ? undefined : outcome.blob.fileId);
    let copies: number | undefined;
    if (outcome.created && this.copyRecord) {
      const start = decodeFileId(outcome.blob.fileId).offset;
      copies = await this.copyRecord({ bundle, start, end: start + HEADER_SIZE + r.size + r.blobMeta.length });
    }
    return {
      fileId: outcome.blob.fileId, fileHash: r.sha1.toString('hex'), size: r.size, mime: outcome.blob.mime,
      filename: r.name, uploadAt: outcome.link.at, deduplicated: !outcome.created, ...(copies === undefined ? {} : { copies }),
    };
  }

  /** Header + liveness check; the basis of every read. */
  async stat(fileId: string): Promise<FileStat> {
    const loc = this.locate(fileId);
    return this.validate(fileId, loc, await this.readHeader(loc));
  }

  /**
   * The whole file in memory, as sonofs's getFile: one positioned read of
   * header and data, checked against the id and the data checksum.
   */
  async getFile(fileId: string): Promise<StoredFile & FileStat> {
    const loc = this.locate(fileId);
    if (loc.size > this.maxBufferSize) {
      throw new BadRequestError('FILE_TOO_LARGE_FOR_BUFFER', `file is ${loc.size} bytes; use createReadStream for files over ${this.maxBufferSize}`);
    }
    let buf: Buffer;
    try {
      buf = await this.pread(loc.bundle, loc.offset, HEADER_SIZE + loc.size);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw fileNotFound();
      throw err;
    }
    const h = decodeHeader(buf);
    const st = await this.validate(fileId, loc, h);
    const data = buf.subarray(HEADER_SIZE);
    if (data.length !== loc.size || crc32c(data) !== h!.dataCrc) throw new CorruptRecordError(`stored data of ${fileId} failed its checksum`);
    return { ...st, buffer: data };
  }

  /** Streams [start, end] of a file; a whole-file stream is checksum-verified as it goes. */
  async createReadStream(fileId: string, range: ReadRange = {}): Promise<Readable> {
    const loc = this.locate(fileId);
    const h = await this.readHeader(loc);
    const st = await this.validate(fileId, loc, h);
    const start = range.start ?? 0;
    const end = range.end ?? st.size - 1;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end >= st.size || (start > end && st.size > 0)) {
      throw new BadRequestError('INVALID_RANGE', `range [${start}, ${end}] is outside the file (size ${st.size})`);
    }
    const whole = start === 0 && end === st.size - 1;
    return new RecordReadStream(this.files, loc.bundle, loc.offset + HEADER_SIZE, start, end + 1, whole ? h!.dataCrc : undefined);
  }

  /** True when this node's disk holds the bytes of a file of that group and server (else a router sends the read on). */
  holds(loc: { group: number; server: number }): boolean {
    return loc.group === this.opts.group && loc.server === this.opts.server;
  }

  /** Parses an id and checks it names this node (OtherNodeFileError tells a router where it lives). */
  private locate(fileId: string): FileLocation {
    const loc = decodeFileId(fileId);
    if (!this.holds(loc)) throw new OtherNodeFileError(loc.group, loc.server);
    return loc;
  }

  /** The record must be a blob matching the id, and its content still live (read-check.ts). */
  private validate(fileId: string, loc: FileLocation, h: RecordHeader | undefined): Promise<FileStat> {
    return checkRead(this.catalog, fileId, loc, h, r => this.pread(loc.bundle, loc.offset + HEADER_SIZE + r.dataLen, r.metaLen));
  }

  getUserFile(user: string, sha1: string): Promise<UserFile | undefined> {
    return this.catalog.getUserFile(checkUser(user), sha1);
  }

  listUserFiles(user: string, limit: number): Promise<UserFile[]> {
    return this.catalog.listUserFiles(checkUser(user), limit);
  }

  /** Links `user` to content already stored (秒传); NOT_FOUND if it is not. */
  async link(user: string, sha1: string, filename: string): Promise<UserFile> {
    const name = checkName(filename);
    const u = checkUser(user);
    // The content may sit unsynced in another bundle (another worker's upload, committed but not
    // yet acknowledged): a link to it is acknowledged only once that is durable too.
    return this.linkOp(RecordKind.Link, sha1, { u, n: name, at: Date.now() }, write => this.catalog.link(u, sha1, name, write), f => f.fileId);
  }

  async rename(user: string, sha1: string, filename: string): Promise<UserFile> {
    const name = checkName(filename);
    const u = checkUser(user);
    const current = await this.catalog.getUserFile(u, sha1);
    if (!current) throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
    return this.linkOp(RecordKind.Link, sha1, { u, n: name, at: current.at }, write => this.catalog.rename(u, sha1, name, write));
  }

  /** Deletes the user's link; the content becomes garbage when no link remains. */
  async remove(user: string, sha1: string): Promise<{ contentGone: boolean }> {
    const u = checkUser(user);
    // Check first, so a request for nothing writes nothing.
    if (!await this.catalog.getUserFile(u, sha1)) throw new NotFoundError('FILE_NOT_FOUND', `you have no file with sha1 ${sha1}`);
    const contentGone = await this.linkOp(RecordKind.Unlink, sha1, { u }, write => this.catalog.unlink(u, sha1, write));
    return { contentGone };
  }

  async close(): Promise<void> {
    this.writer.retireActive();
    this.files.closeAll();
  }

  /** A data-less record, written inside the catalog operation that it logs. */
  private async linkOp<T>(
    kind: RecordKind, sha1: string, meta: { u: string; n?: string; at?: number }, op: (write: (seq: number) => void) => Promise<T>,
    contentOf?: (result: T) => string,
  ): Promise<T> {
    const sha1Buf = Buffer.from(sha1, 'hex');
    const header = { kind, mimeCode: 0, slotLen: 0, seq: 0, time: Date.now(), cookie: 0, sha1: sha1Buf };
    const len = encodeSmallRecord(header, meta).length;
    const slot = await this.writer.reserve(len);
    let committed = false;
    try {
      let wrote = false;
      const result = await op(seq => {
        wrote = true;
        slot.writeSync(encodeSmallRecord({ ...header, seq, slotLen: slot.length }, meta));
      }).catch(err => {
        // as in upload: a commit whose answer was lost may be in the catalog, and keeps its record
        committed = wrote && err instanceof MetadataUnavailableError && err.maybeApplied;
        throw err;
      });
      // Only a committed operation keeps its record: a failed commit's record (its seq may be
      // taken by another operation) is padded over, or a rebuild would apply it.
      committed = true;
      await this.durable(slot.bundle, contentOf?.(result));
      return result;
    } finally {
      if (committed) slot.finish();
      else await slot.abort();
    }
  }

  /**
   * With fsync: a record's bundle, and the bundle of the content it names (file id) when that is another,
   * synced together. Content another node of a cluster stored is synced by that node, before it answers
   * its own upload (a power cut of that node in between is not covered yet).
   */
  async durable(bundle: number, contentFileId?: string): Promise<void> {
    if (!this.opts.fsync) return;
    const loc = contentFileId === undefined ? undefined : decodeFileId(contentFileId);
    const content = loc && loc.group === this.opts.group && loc.server === this.opts.server ? loc.bundle : bundle;
    await Promise.all([ this.files.sync(bundle), content !== bundle ? this.files.sync(content) : undefined ]);
  }

  private async readHeader(loc: FileLocation): Promise<RecordHeader | undefined> {
    try {
      return decodeHeader(await this.pread(loc.bundle, loc.offset, HEADER_SIZE));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async pread(bundle: number, offset: number, length: number): Promise<Buffer> {
    const fd = this.files.acquire(bundle);
    try {
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await read(fd, buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === length ? buf : buf.subarray(0, done);
    } finally {
      this.files.release(bundle);
    }
  }
}
