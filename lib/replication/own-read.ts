import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { FileLocation } from '../bundle/file-id';
import { bundlePath } from '../bundle/files';
import { HEADER_SIZE, decodeHeader, slotLenOfDamagedHeader } from '../bundle/record';
import { CorruptRecordError, NotFoundError } from '../errors';
import type { FileStat, ReadRange, SonofsStore, StoredFile } from '../store';
import { MemoryFile } from './memory-file';
import type { FileSource } from './replica-read';

/** A record of this node's own bundles that failed its checksum when read: to write again from a member's copy. */
export interface BadOwnRecord {
  fileId: string;
  bundle: number;
  offset: number;
}

export interface OwnReadOptions {
  /** files up to this size are read whole into memory, checked, and answered from there */
  keep: number;
  /** files up to this size are checked whole before their first byte goes out; larger ones as they stream */
  checkFirst: number;
  /** how long a bad record is read from members before it is checked again (its repair may have failed) */
  recheckMs: number;
  /** how long a record checked whole is served without being checked again */
  verifiedMs: number;
  /** bad records reported per minute at most (made-up ids pointing at bytes that look like headers must not flood the agent) */
  reportsPerMinute: number;
}

export const OWN_READ_DEFAULTS: OwnReadOptions = { keep: 1 << 20, checkFirst: 64 << 20, recheckMs: 60_000, verifiedMs: 600_000, reportsPerMinute: 60 };

/** Records remembered as bad, or as checked, at most (the oldest go first). */
const REMEMBERED = 10_000;

/**
 * Cluster mode: reads of this node's own files that never hand out a record
 * failing its checksum while a member of the group may hold a good copy.
 * A small file is read whole and checked (one read, as a small download makes
 * anyway); a larger one is checked whole before it is served, up to
 * `checkFirst`; beyond that, a whole-file stream is checked as it goes and
 * cut when it fails (the client sees a short body, never a silent bad one).
 * A record whose header is damaged is bad too. A bad record is reported once
 * (`onBad`) and read from members until it is repaired or `recheckMs` passed.
 */
export class CheckedOwnReads {
  private readonly bad = new Map<string, number>();
  private readonly verified = new Map<string, number>();
  private reports: number[] = [];

  constructor(
    private readonly store: SonofsStore,
    private readonly onBad: (bad: BadOwnRecord) => void,
    private readonly opts: OwnReadOptions = OWN_READ_DEFAULTS,
  ) {}

  /** A checked source of the file, or undefined when this node's record is bad (read it from a member). */
  async open(fileId: string, loc: FileLocation): Promise<FileSource | undefined> {
    const key = keyOf(loc);
    const until = this.bad.get(key);
    if (until !== undefined) {
      if (Date.now() < until) return undefined;
      this.bad.delete(key);
    }
    try {
      if (loc.size <= Math.min(this.opts.keep, this.store.maxBufferSize)) {
        const { buffer, ...st } = await this.store.getFile(fileId);
        return new MemoryFile(st, buffer);
      }
      if (loc.size <= this.opts.checkFirst) {
        // checked whole once, then served as it is for a while (a video player's many ranges, HEADs, 304s)
        if ((this.verified.get(key) ?? 0) < Date.now()) {
          await drain(await this.store.createReadStream(fileId));
          remember(this.verified, key, Date.now() + this.opts.verifiedMs);
        }
        return this.store;
      }
      return new StreamCheckedSource(this.store, () => this.found(fileId, loc));
    } catch (err) {
      const bad = err instanceof CorruptRecordError || (err instanceof NotFoundError && await this.headerDamaged(loc));
      if (!bad) throw err;
      this.found(fileId, loc);
      return undefined;
    }
  }

  /**
   * The store answers "no such file" when the header at the id's place fails
   * its checksum (after a rebuild dropped a torn record, that is the truth).
   * A header that still starts like one is a damaged record a member may hold
   * whole; zeros or the middle of another record are a made-up id.
   */
  private async headerDamaged(loc: FileLocation): Promise<boolean> {
    const head = Buffer.alloc(HEADER_SIZE);
    let fh;
    try {
      fh = await fs.promises.open(bundlePath(this.store.opts.root, loc.bundle), 'r');
      await fh.read(head, 0, HEADER_SIZE, loc.offset);
    } catch {
      return false;
    } finally {
      await fh?.close();
    }
    return !decodeHeader(head) && slotLenOfDamagedHeader(head) !== undefined;
  }

  /** The agent wrote the record again (or found it intact): this node's bytes serve it again. */
  repaired(at: { bundle: number; offset: number }): void {
    this.bad.delete(keyOf(at));
    this.verified.delete(keyOf(at));
  }

  private found(fileId: string, loc: FileLocation): void {
    const key = keyOf(loc);
    this.verified.delete(key);
    if (this.bad.has(key)) return;
    remember(this.bad, key, Date.now() + this.opts.recheckMs);
    const now = Date.now();
    this.reports = this.reports.filter(t => t > now - 60_000);
    if (this.reports.length >= this.opts.reportsPerMinute) return; // read from members all the same; reported when checked again
    this.reports.push(now);
    this.onBad({ fileId, bundle: loc.bundle, offset: loc.offset });
  }
}

function remember(map: Map<string, number>, key: string, until: number): void {
  map.delete(key);
  map.set(key, until);
  if (map.size > REMEMBERED) map.delete(map.keys().next().value!);
}

function keyOf(at: { bundle: number; offset: number }): string {
  return `${at.bundle}:${at.offset}`;
}

/** Reads a checked stream to its end: rejects with its checksum error. */
async function drain(stream: Readable): Promise<void> {
  for await (const _ of stream) { /* only the check matters */ }
}

/** The store's reads of a large file, reporting a whole-file stream whose checksum fails. */
class StreamCheckedSource implements FileSource {
  constructor(private readonly store: SonofsStore, private readonly onCorrupt: () => void) {}

  stat(fileId: string): Promise<FileStat> {
    return this.store.stat(fileId);
  }

  getFile(fileId: string): Promise<StoredFile & FileStat> {
    return this.store.getFile(fileId);
  }

  async createReadStream(fileId: string, range?: ReadRange): Promise<Readable> {
    const stream = await this.store.createReadStream(fileId, range);
    stream.on('error', err => {
      if (err instanceof CorruptRecordError) this.onCorrupt();
    });
    return stream;
  }
}
