import fs from 'node:fs';
import { Readable } from 'node:stream';
import { BundleFiles, bundlePath, punchHole } from '../bundle/files';
import { HEADER_SIZE, RecordHeader, decodeHeader, paddingHeader } from '../bundle/record';
import type { RecordSpace } from '../store';
import type { SpaceRef } from './types';

/**
 * A session's reserved slot, seen from any process: the header at `offset`
 * stays Pending (scans step over it) until the upload commits, when the
 * store writes the real header inside its catalog operation.
 */
export class SessionSpace implements RecordSpace {
  readonly bundle: number;
  readonly offset: number;
  readonly length: number;

  constructor(private readonly files: BundleFiles, ref: SpaceRef) {
    this.bundle = ref.bundle;
    this.offset = ref.offset;
    this.length = ref.length;
  }

  writeSync(buf: Buffer, pos = 0): void {
    if (pos < 0 || pos + buf.length > this.length) throw new RangeError(`write [${pos}, ${pos + buf.length}) outside space of ${this.length}`);
    const fd = this.files.acquire(this.bundle);
    try {
      let done = 0;
      while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, this.offset + pos + done);
    } finally {
      this.files.release(this.bundle);
    }
  }

  /** Later slots may follow in the extent: the space keeps its length. */
  shrinkTo(): number {
    return this.length;
  }
}

/** File position of data byte `at` of a session's space. */
export function dataPosition(ref: SpaceRef, at: number): number {
  return ref.offset + HEADER_SIZE + at;
}

/**
 * Gives a session's space back: a Padding header makes scans skip it, and
 * the data blocks are punched out of the sparse bundle (fallocate), so a
 * cancelled or expired upload stops costing disk at once instead of at the
 * next compaction. Punching is best effort: a filesystem without it keeps
 * the blocks until compaction.
 */
export async function releaseSpace(root: string, ref: SpaceRef): Promise<void> {
  const file = bundlePath(root, ref.bundle);
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, paddingHeader(ref.length), 0, undefined, ref.offset);
  } finally {
    fs.closeSync(fd);
  }
  await punchHole(file, ref.offset + HEADER_SIZE, ref.length - HEADER_SIZE);
}

/** The bytes [start, end) of a session's data, from its space or staging file. */
export function readSessionData(root: string, where: { space?: SpaceRef; staging?: string }, start: number, end: number): Readable {
  if (end <= start) return Readable.from([]);
  if (where.space) {
    return fs.createReadStream(bundlePath(root, where.space.bundle), {
      start: dataPosition(where.space, start), end: dataPosition(where.space, end) - 1, highWaterMark: 1 << 20,
    });
  }
  return fs.createReadStream(where.staging!, { start, end: end - 1, highWaterMark: 1 << 20 });
}

/**
 * The header at the start of a session's space: Pending until the upload
 * commits. Through `files`, a worker reads it on the bundle's open fd.
 */
export function readSpaceHeader(root: string, ref: SpaceRef, files?: BundleFiles): RecordHeader | undefined {
  let fd: number;
  try {
    fd = files ? files.acquire(ref.bundle) : fs.openSync(bundlePath(root, ref.bundle), 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(HEADER_SIZE);
    fs.readSync(fd, head, 0, HEADER_SIZE, ref.offset);
    return decodeHeader(head);
  } finally {
    if (files) files.release(ref.bundle);
    else fs.closeSync(fd);
  }
}
