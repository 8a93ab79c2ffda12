import { Readable, pipeline } from 'node:stream';
import type { WriteOutcome } from '../../../lib';
import { Checksum, TrailerChecksum, announcesChecksumTrailer, parseChecksum } from '../../../lib/tus';
import type { TusRequest } from './request';

/** How a request's bytes are verified: an Upload-Checksum header, a trailer, or not at all. */
export interface BodyCheck {
  checksum?: Checksum;
  trailer: boolean;
}

/** Parsed before a byte is read, so a bad checksum header costs nothing (400). */
export function bodyCheck(t: TusRequest): BodyCheck {
  const header = t.header('Upload-Checksum');
  if (header !== undefined) return { checksum: parseChecksum(header), trailer: false };
  return { trailer: announcesChecksumTrailer(t.ctx.headers) };
}

/**
 * Streams the request body into the upload at `at` (engine.write, ordered:
 * the engine's lock serialises writers across workers and a newcomer makes a
 * stalled writer let go). Without a checksum, what arrived of a cut body is
 * kept (Core SHOULD); with one, the chunk is all or nothing.
 */
export function writeBody(t: TusRequest, id: string, user: string, at: number, check: BodyCheck, complete = false): Promise<WriteOutcome> {
  let source: Readable = t.ctx.req;
  if (check.trailer) {
    const verified = new TrailerChecksum(t.ctx.req as unknown as ConstructorParameters<typeof TrailerChecksum>[0]);
    pipeline(t.ctx.req, verified, () => undefined); // errors surface through `verified`
    source = verified;
  }
  return t.engine.write(id, {
    user, at, source, ordered: true, checksum: check.checksum, keepPartial: !check.trailer, complete: complete ? { user } : undefined,
    // a trailer is checked at the end of the body: such a body is never stored in one go
    bodyLength: check.trailer ? undefined : t.ctx.request.length,
  });
}
