import type { Readable } from 'node:stream';
import { HEADER_SIZE, RecordHeader, RecordKind, crc32c, decodeHeader } from '../bundle/record';
import { FRAME_HEAD, FrameType, Hole, StreamEnd, WalkRange, readFrameHead } from './protocol';
import { holesWithin } from './source';
import type { ReplicaWriter } from './replica-files';

/** Records up to this size are checked whole in memory, then written with one call. */
const SMALL_RECORD = 1 << 20;

/** Exact reads from a byte stream that arrives in chunks of any size. */
export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private chunks: Buffer[] = [];
  private have = 0;

  constructor(stream: Readable) {
    this.it = stream[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes; throws when the stream ends first (the sender went away). */
  async exactly(n: number): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    while (this.have < n) await this.more();
    if (this.chunks[0].length >= n) return this.take(n);
    const out = Buffer.concat(this.chunks, this.have);
    this.chunks = [ out ];
    return this.take(n);
  }

  /** Between 1 and `n` bytes, as they come. */
  async upTo(n: number): Promise<Buffer> {
    if (!this.have) await this.more();
    return this.take(Math.min(n, this.chunks[0].length));
  }

  /** The stream ends here: read to its end (so the connection can carry the next call); bytes left over are an error. */
  async end(): Promise<void> {
    for (let r = await this.it.next(); !r.done; r = await this.it.next()) this.have += r.value.length;
    if (this.have) throw new Error(`${this.have} bytes follow the END frame`);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    const out = first.subarray(0, n);
    if (n === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.have -= n;
    return out;
  }

  private async more(): Promise<void> {
    const r = await this.it.next();
    if (r.done) throw new Error('the stream ended before its END frame');
    this.chunks.push(r.value);
    this.have += r.value.length;
  }
}

export interface CopyOutcome extends StreamEnd {
  /** record bytes written to the copy */
  copied: number;
  /** records that failed their checksum: not written, to be asked for again later */
  bad: Hole[];
}

/**
 * Copies one answer of a peer (protocol.ts) into `writer`, each record at
 * its own offset. Every record is checked before it counts: header, data and
 * meta checksums; a large record's data is written as it comes and its
 * header only once all of it checked, so the copy never holds a header
 * whose bytes were not verified. Anything off-protocol fails the whole answer.
 */
export async function copyAnswer(body: Readable, ranges: WalkRange[], writer: ReplicaWriter): Promise<CopyOutcome> {
  const bytes = new ByteReader(body);
  const out: CopyOutcome = { end: null, holes: [], skipped: 0, copied: 0, bad: [] };
  const asked = (pos: number, slotLen: number) => ranges.some(r => pos >= r.start && (r.end === null || pos + slotLen <= r.end));
  for (;;) {
    const { type, value: pos } = readFrameHead(await bytes.exactly(FRAME_HEAD));
    if (type === FrameType.End) {
      const end = JSON.parse((await bytes.exactly(pos)).toString('utf8')) as StreamEnd;
      const open = ranges.some(r => r.end === null);
      if ((end.end !== null) !== open || (open && !Number.isSafeInteger(end.end)) || !holesWithin(end.holes, ranges, end.end)) {
        throw new Error('the END frame does not fit the ranges asked for');
      }
      await bytes.end();
      return { ...out, end: end.end, holes: end.holes, skipped: end.skipped };
    }
    const head = Buffer.from(await bytes.exactly(HEADER_SIZE));
    const h = decodeHeader(head);
    if (!h || !asked(pos, h.slotLen) || h.dataLen + h.metaLen > h.slotLen - HEADER_SIZE) throw new Error(`frame at ${pos} is not a record of the ranges asked for`);
    if (type === FrameType.Mark) {
      if (h.kind !== RecordKind.Pending && h.kind !== RecordKind.Padding) throw new Error(`mark at ${pos} is not a Pending or Padding header`);
      await writer.write([ head ], pos);
    } else if (type === FrameType.Record) {
      if (h.kind !== RecordKind.Blob && h.kind !== RecordKind.Link && h.kind !== RecordKind.Unlink) throw new Error(`record at ${pos} is of kind ${h.kind}`);
      if (await copyRecord(bytes, writer, pos, head, h)) out.copied += HEADER_SIZE + h.dataLen + h.metaLen;
      else out.bad.push([ pos, pos + h.slotLen ]);
    } else {
      throw new Error(`unknown frame type ${type}`);
    }
  }
}

/** One record's bytes after its header: written when every checksum holds; false when one fails. */
async function copyRecord(bytes: ByteReader, writer: ReplicaWriter, pos: number, head: Buffer, h: RecordHeader): Promise<boolean> {
  if (HEADER_SIZE + h.dataLen + h.metaLen <= SMALL_RECORD) {
    const body = await bytes.exactly(h.dataLen + h.metaLen);
    const ok = crc32c(body.subarray(0, h.dataLen)) === h.dataCrc && crc32c(body.subarray(h.dataLen)) === h.metaCrc;
    if (ok) await writer.write([ head, body ], pos);
    return ok;
  }
  let crc = 0;
  for (let done = 0; done < h.dataLen;) {
    const piece = await bytes.upTo(Math.min(SMALL_RECORD, h.dataLen - done));
    crc = crc32c(piece, crc);
    await writer.write([ piece ], pos + HEADER_SIZE + done);
    done += piece.length;
  }
  const meta = await bytes.exactly(h.metaLen);
  if (crc !== h.dataCrc || crc32c(meta) !== h.metaCrc) return false;
  await writer.write([ meta ], pos + HEADER_SIZE + h.dataLen);
  await writer.write([ head ], pos);
  return true;
}
