import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WriteBehind } from './bundle/files';
import { HEADER_SIZE, crc32c } from './bundle/record';
import type { Slot } from './bundle/slot-writer';
import { BadRequestError, SonofsError, UploadAbortedError } from './errors';

// The data of an upload on its way into its slot (store.ts): read, hashed and written as it streams.

/** What an error of the client's stream means for the client. */
export function sourceError(err: unknown): Error {
  if (err instanceof SonofsError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || (err as Error).message === 'aborted') {
    return new UploadAbortedError();
  }
  // busboy limits and other errors that carry a status (e.g. 413) pass through
  if (typeof (err as { status?: unknown }).status === 'number') return err as Error;
  // Anything else came from the client's stream (e.g. a cut multipart body).
  return new BadRequestError('BAD_UPLOAD_STREAM', `the upload stream failed: ${(err as Error).message}`);
}

/** Reads up to `limit` bytes; `ended` tells whether the stream ended within them. */
export async function readUpTo(source: Readable, limit: number): Promise<{ chunks: Buffer[]; length: number; ended: boolean }> {
  const chunks: Buffer[] = [];
  let length = 0;
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length > limit) {
        source.pause();
        done(false);
      }
    };
    const onEnd = () => done(true);
    const onError = (err: Error) => {
      cleanup();
      reject(sourceError(err));
    };
    const onClose = () => {
      cleanup();
      reject(new UploadAbortedError());
    };
    const cleanup = () => {
      source.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const done = (ended: boolean) => {
      cleanup();
      resolve({ chunks, length, ended });
    };
    source.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/**
 * A file already in memory (small): its size and checksums. Its bytes go to
 * the slot with the Pending header in one synchronous vectored write: into the
 * page cache that costs less than a round trip through the thread pool, which
 * on a busy node is two context switches.
 */
export function hashChunks(chunks: Buffer[]) {
  const sha1 = createHash('sha1');
  let crc = 0;
  let size = 0;
  for (const c of chunks) {
    sha1.update(c);
    crc = crc32c(c, crc);
    size += c.length;
  }
  return { size, sha1: sha1.digest(), crc };
}

/** Streams the source into the slot after the header, hashing as it goes. */
export async function writeData(slot: Slot, head: Buffer[], source: Readable, bound: number, exceeded: () => SonofsError, writeBehind: boolean) {
  const sha1 = createHash('sha1');
  let crc = 0;
  let size = 0;
  const behind = writeBehind ? new WriteBehind(() => slot.durable()) : undefined;
  let sinkError: Error | undefined;
  const take = async (chunks: Buffer[]) => {
    const len = chunks.reduce((n, c) => n + c.length, 0);
    if (size + len > bound) throw exceeded();
    const at = size;
    size += len;
    // The write runs in the thread pool while this thread hashes the same (unchanging) buffers.
    const written = slot.writev(chunks, HEADER_SIZE + at);
    for (const c of chunks) {
      sha1.update(c);
      crc = crc32c(c, crc);
    }
    await written;
    behind?.wrote(size);
  };
  const sink = new Writable({
    highWaterMark: 1 << 20,
    writev(entries, cb) {
      take(entries.map(e => e.chunk as Buffer)).then(() => cb(), err => cb(sinkError = err));
    },
  });
  try {
    if (head.length) await take(head);
    await pipeline(source, sink);
  } catch (err) {
    throw sinkError ?? sourceError(err);
  }
  await behind?.settled();
  return { size, sha1: sha1.digest(), crc };
}
