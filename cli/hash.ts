import { createHash, Hash } from 'node:crypto';
import fs from 'node:fs';
import { Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Passes bytes through, hashing and counting them on the way. */
export class Sha1Counter extends Transform {
  bytes = 0;

  /** `hash` may hold bytes already (a partial download's) */
  constructor(private readonly onBytes?: (total: number) => void, readonly hash: Hash = createHash('sha1')) {
    super();
  }

  _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

/** Feeds the first `end` bytes of a file (all of it by default) into `hash`, reading it as a stream. */
export async function hashFile(file: string, hash: Hash, onBytes?: (n: number) => void, end?: number): Promise<void> {
  if (end === 0) return;
  let n = 0;
  await pipeline(fs.createReadStream(file, end === undefined ? {} : { end: end - 1 }), async source => {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      hash.update(chunk);
      n += chunk.length;
      onBytes?.(n);
    }
  });
}

export const SHA1 = /^[0-9a-f]{40}$/i;
