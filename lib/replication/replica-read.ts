import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { decodeFileId, FileLocation } from '../bundle/file-id';
import { HEADER_SIZE, RecordHeader, RecordKind, crc32c, decodeHeader, decodeMeta } from '../bundle/record';
import { BadRequestError } from '../errors';
import { DEFAULT_MIME, mimeFromCode } from '../mime';
import type { FileStat, ReadRange, StoredFile } from '../store';
import { readFullyAt } from '../bundle/files';
import { replicaBundlePath } from './replica-files';
import { MemoryFile, checkRange } from './memory-file';

/** The reads a download makes, as the store (and ctx.sonofs) offers them. */
export interface FileSource {
  stat(fileId: string): Promise<FileStat>;
  getFile(fileId: string): Promise<StoredFile & FileStat>;
  createReadStream(fileId: string, range?: ReadRange): Promise<Readable>;
}

/** A record of a peer's bundle whose copy on this node failed its checksum: to copy again. */
export interface BadCopy {
  group: number;
  server: number;
  bundle: number;
  offset: number;
  /** the record's slot, from its (intact) header */
  slotLen: number;
}

/** Files up to this size are kept from the check and answered from memory. */
const KEEP = 1 << 20;
const PIECE = 1 << 20;

/**
 * Reads of a group peer's files from this node's copy (root/replicas). A copy
 * is served only when its record is there, matches the file id, and its data
 * and meta pass their checksums, all checked before the first byte goes out;
 * a copy that fails is answered as if it were not there, and logged.
 */
export class ReplicaReader {
  constructor(
    private readonly root: string,
    private readonly self: { group: number; server: number },
    private readonly warn: (msg: string) => void,
    /** told of each bad copy whose slot is known, so it is copied again from its owner */
    private readonly onBad: (bad: BadCopy) => void = () => undefined,
  ) {}

  /** The file from this node's copy, or undefined: not a peer's id, not copied (yet), or a bad copy. */
  async open(fileId: string): Promise<FileSource | undefined> {
    let loc: FileLocation;
    try {
      loc = decodeFileId(fileId);
    } catch {
      return undefined; // the usual read answers what is wrong with it
    }
    if (loc.group !== this.self.group || loc.server === this.self.server) return undefined;
    const file = replicaBundlePath(this.root, loc.group, loc.server, loc.bundle);
    return atCopiedHeader(file, loc.offset, async (fh, h) => {
      if (!h || h.kind !== RecordKind.Blob || h.cookie !== loc.cookie || h.dataLen !== loc.size || h.mimeCode !== loc.mimeCode) return undefined;
      const checked = await checkRecord(fh, loc.offset, h);
      if (!checked) {
        this.warn(`[egg-sonofs] the copy of ${fileId} (bundle ${loc.bundle} offset ${loc.offset} of node ${loc.group}.${loc.server}) ` +
          `under ${file} failed its checksum: not served; asking for it again`);
        this.onBad({ group: loc.group, server: loc.server, bundle: loc.bundle, offset: loc.offset, slotLen: h.slotLen });
        return undefined;
      }
      const stat: FileStat = {
        fileId, fileHash: h.sha1.toString('hex'), size: h.dataLen, mime: checked.mime ?? mimeFromCode(h.mimeCode) ?? DEFAULT_MIME, time: h.time,
      };
      return new ReplicaFile(file, loc.offset + HEADER_SIZE, stat, checked.data);
    });
  }
}

/** Runs `fn` with a copy's file and the header at `offset` (undefined when none is valid there); undefined when the copy is not there. */
async function atCopiedHeader<T>(file: string, offset: number, fn: (fh: FileHandle, h: RecordHeader | undefined) => Promise<T | undefined>): Promise<T | undefined> {
  let fh: FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    return await fn(fh, decodeHeader(await readFullyAt(fh, offset, HEADER_SIZE)));
  } finally {
    await fh.close();
  }
}

/**
 * Where the bytes of a copied record lie (header, data, meta), for its owner
 * to write again over a bad record of its own; undefined when the copy has
 * no record there. Its checksums are the owner's to check.
 */
export async function copiedRecordAt(
  root: string, peer: { group: number; server: number }, bundle: number, offset: number,
): Promise<{ file: string; start: number; length: number } | undefined> {
  const file = replicaBundlePath(root, peer.group, peer.server, bundle);
  return atCopiedHeader(file, offset, async (_fh, h) => {
    if (!h || (h.kind !== RecordKind.Blob && h.kind !== RecordKind.Link && h.kind !== RecordKind.Unlink)) return undefined;
    return { file, start: offset, length: HEADER_SIZE + h.dataLen + h.metaLen };
  });
}

/** Data and meta of the record against their checksums: the meta's mime, and the data when small; undefined when one fails. */
export async function checkRecord(fh: FileHandle, offset: number, h: RecordHeader): Promise<{ mime?: string; data?: Buffer } | undefined> {
  const metaBuf = await readFullyAt(fh, offset + HEADER_SIZE + h.dataLen, h.metaLen);
  if (metaBuf.length !== h.metaLen || crc32c(metaBuf) !== h.metaCrc) return undefined;
  let mime: string | undefined;
  try {
    const m = decodeMeta(metaBuf).m;
    if (typeof m === 'string') mime = m;
  } catch {
    return undefined;
  }
  if (h.dataLen <= KEEP) {
    const data = await readFullyAt(fh, offset + HEADER_SIZE, h.dataLen);
    return data.length === h.dataLen && crc32c(data) === h.dataCrc ? { mime, data } : undefined;
  }
  let crc = 0;
  const buf = Buffer.allocUnsafe(PIECE);
  for (let done = 0; done < h.dataLen;) {
    const n = Math.min(PIECE, h.dataLen - done);
    const { bytesRead } = await fh.read(buf, 0, n, offset + HEADER_SIZE + done);
    if (bytesRead === 0) return undefined;
    crc = crc32c(buf.subarray(0, bytesRead), crc);
    done += bytesRead;
  }
  return crc === h.dataCrc ? { mime } : undefined;
}


/** One checked record of a copy: small ones from memory, others streamed from the copy. */
class ReplicaFile implements FileSource {
  private readonly memory: MemoryFile | undefined;

  constructor(private readonly file: string, private readonly dataAt: number, private readonly st: FileStat, data?: Buffer) {
    this.memory = data && new MemoryFile(st, data);
  }

  async stat(): Promise<FileStat> {
    return this.st;
  }

  async getFile(): Promise<StoredFile & FileStat> {
    if (!this.memory) throw new BadRequestError('FILE_TOO_LARGE_FOR_BUFFER', `file is ${this.st.size} bytes; stream it`);
    return this.memory.getFile();
  }

  async createReadStream(fileId: string, range: ReadRange = {}): Promise<Readable> {
    if (this.memory) return this.memory.createReadStream(fileId, range);
    const { start, end } = checkRange(this.st.size, range);
    return fs.createReadStream(this.file, { start: this.dataAt + start, end: this.dataAt + end, highWaterMark: 1 << 20 });
  }
}
