import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { UploadAbortedError } from '../errors';
import { crc32c } from '../bundle/record';

/**
 * source.pipe(sink) until the sink finishes. Unlike pipeline() it leaves the
 * source alive when the sink refuses (too many bytes): the request can still
 * be answered with a clear error instead of a reset connection.
 */
export function pump(source: Readable, sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      source.unpipe(sink);
      reject(err);
    };
    source.once('error', fail);
    // a client that disconnects ends the request without an error on some paths
    source.once('close', () => { if (!source.readableEnded) fail(new UploadAbortedError()); });
    sink.once('error', fail);
    sink.once('finish', resolve);
    source.pipe(sink);
  });
}

/** sha1 and crc32c of a stream, and its digest in `otherAlgorithm` if named, in one read. */
export async function digestOf(stream: Readable, otherAlgorithm?: string): Promise<{ sha1: Buffer; crc: number; other?: Buffer }> {
  const sha1 = createHash('sha1');
  const other = otherAlgorithm ? createHash(otherAlgorithm) : undefined;
  let crc = 0;
  for await (const chunk of stream) {
    sha1.update(chunk);
    other?.update(chunk);
    crc = crc32c(chunk, crc);
  }
  return { sha1: sha1.digest(), crc, other: other?.digest() };
}

/** The streams' bytes one after another; each is opened only when the one before has ended. */
export async function* concatStreams(streams: Array<() => Readable>): AsyncGenerator<Buffer> {
  for (const open of streams) yield* open();
}
