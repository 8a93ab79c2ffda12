import { createHash, Hash } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';
import { ChecksumMismatchError } from '../errors';
import { tusErrors } from './errors';
import { TUS_CHECKSUM_ALGORITHMS } from './headers';

export interface Checksum {
  algorithm: string;
  digest: Buffer;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Upload-Checksum (Checksum): `<algorithm> <base64 digest>`. An algorithm we
 * do not support is a 400 (K2); so is a digest that is not base64 or has the
 * wrong length for its algorithm (it could never match).
 */
export function parseChecksum(value: string): Checksum {
  const m = /^([A-Za-z0-9-]+) +(\S+)$/.exec(value.trim());
  if (!m) throw tusErrors.bad('INVALID_CHECKSUM', 'Upload-Checksum must be "<algorithm> <base64 digest>"');
  const algorithm = m[1].toLowerCase();
  if (!TUS_CHECKSUM_ALGORITHMS.includes(algorithm)) {
    throw tusErrors.bad('CHECKSUM_ALGORITHM_UNSUPPORTED', `checksum algorithm ${m[1]} is not supported; use one of ${TUS_CHECKSUM_ALGORITHMS.join(', ')}`);
  }
  if (!BASE64.test(m[2])) throw tusErrors.bad('INVALID_CHECKSUM', 'the Upload-Checksum digest is not base64');
  const digest = Buffer.from(m[2], 'base64');
  if (digest.length !== createHash(algorithm).digest().length) {
    throw tusErrors.bad('INVALID_CHECKSUM', `a ${algorithm} digest has ${createHash(algorithm).digest().length} bytes, not ${digest.length}`);
  }
  return { algorithm, digest };
}

/** What the trailer checker needs of a request: its trailers once the body has ended. */
interface WithTrailers {
  trailers: Record<string, string | undefined>;
}

/**
 * checksum-trailer: the digest arrives after the body (HTTP/1.1 chunked
 * trailer), so the algorithm is unknown while the bytes stream. The body is
 * hashed with every supported algorithm on its way through; when it ends the
 * trailer is read (Node fills req.trailers before 'end') and checked. A
 * mismatch fails the stream with a SonofsError, so the session engine
 * discards the bytes and keeps the offset (K2).
 */
export class TrailerChecksum extends Transform {
  private readonly hashes = new Map<string, Hash>(TUS_CHECKSUM_ALGORITHMS.map(a => [ a, createHash(a) ]));

  constructor(private readonly req: WithTrailers) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    for (const h of this.hashes.values()) h.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const value = this.req.trailers['upload-checksum'];
    if (!value) {
      cb(tusErrors.bad('MISSING_CHECKSUM_TRAILER', 'the request announced an Upload-Checksum trailer but sent none; the bytes were discarded'));
      return;
    }
    let sum: Checksum;
    try {
      sum = parseChecksum(value);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (!this.hashes.get(sum.algorithm)!.digest().equals(sum.digest)) {
      cb(new ChecksumMismatchError(`the bytes do not match their ${sum.algorithm} checksum trailer; they were discarded`));
      return;
    }
    cb();
  }
}

/** True when a request announces an Upload-Checksum trailer (`Trailer: Upload-Checksum`) on a chunked body. */
export function announcesChecksumTrailer(headers: Record<string, string | string[] | undefined>): boolean {
  const trailer = headers.trailer;
  const list = (Array.isArray(trailer) ? trailer.join(',') : trailer ?? '').toLowerCase().split(',').map(s => s.trim());
  return list.includes('upload-checksum') && /chunked/i.test(String(headers['transfer-encoding'] ?? ''));
}
