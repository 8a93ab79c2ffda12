import { Readable } from 'node:stream';
import { BadRequestError } from '../errors';
import type { FileStat, ReadRange, StoredFile } from '../store';

/** The bytes [start, end] of a read of a file of `size` bytes, checked as the store checks them. */
export function checkRange(size: number, range: ReadRange): { start: number; end: number } {
  const start = range.start ?? 0;
  const end = range.end ?? size - 1;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end >= size || (start > end && size > 0)) {
    throw new BadRequestError('INVALID_RANGE', `range [${start}, ${end}] is outside the file (size ${size})`);
  }
  return { start, end };
}

/** A file whose data was read and checked whole: its reads answer from memory. */
export class MemoryFile {
  constructor(private readonly st: FileStat, private readonly data: Buffer) {}

  async stat(): Promise<FileStat> {
    return this.st;
  }

  async getFile(): Promise<StoredFile & FileStat> {
    return { ...this.st, buffer: this.data };
  }

  async createReadStream(_fileId: string, range: ReadRange = {}): Promise<Readable> {
    const { start, end } = checkRange(this.st.size, range);
    return Readable.from(this.st.size ? [ this.data.subarray(start, end + 1) ] : [], { objectMode: false });
  }
}
