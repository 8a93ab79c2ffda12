import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { decodeFileId } from '../bundle/file-id';
import { BadRequestError, CorruptRecordError, NodeUnavailableError, NotFoundError, RangeNotSatisfiableError } from '../errors';
import type { FileStat, ReadRange, StoredFile } from '../store';
import type { FileSource } from '../replication';
import { CandidateNode, readCandidates } from './read-candidates';
import { RemoteAnswer, readFromNodes } from './remote-read';

export interface RemoteSourceOptions {
  /** the nodes of the cluster map and this node's instance (never asked) */
  map(): Promise<{ nodes: ReadonlyArray<CandidateNode>; self: string } | undefined>;
  secret: string;
  /** see RemoteReadOptions.timeoutMs */
  timeoutMs: number;
  /** largest file getFile() returns as a Buffer */
  maxBufferSize: number;
}

/**
 * The files other nodes hold, read through the node-to-node API as a
 * FileSource (the API ctx.sonofs reads with): the file's own server first,
 * then the members of its group. What a FileStat needs comes from the
 * answer's headers (the time to the second, as Last-Modified carries it).
 */
export class RemoteFileSource implements FileSource {
  constructor(private readonly o: RemoteSourceOptions) {}

  async stat(fileId: string): Promise<FileStat> {
    const a = await this.ask(fileId, 'HEAD');
    a.body.resume();
    return statOf(fileId, a);
  }

  async getFile(fileId: string): Promise<StoredFile & FileStat> {
    const size = decodeFileId(fileId).size;
    if (size > this.o.maxBufferSize) {
      throw new BadRequestError('FILE_TOO_LARGE_FOR_BUFFER', `file is ${size} bytes; use createReadStream for files over ${this.o.maxBufferSize}`);
    }
    const a = await this.ask(fileId, 'GET');
    const st = statOf(fileId, a);
    const chunks: Buffer[] = [];
    for await (const c of cutAware(a)) chunks.push(c as Buffer);
    const buffer = Buffer.concat(chunks);
    // the sha1 in the id's ETag is the content's: a copy that does not match it is never handed out
    if (buffer.length !== st.size || createHash('sha1').update(buffer).digest('hex') !== st.fileHash) {
      throw new CorruptRecordError(`the bytes of ${fileId} read from node ${a.from.group}.${a.from.server} do not match its sha1`);
    }
    return { ...st, buffer };
  }

  async createReadStream(fileId: string, range: ReadRange = {}): Promise<Readable> {
    const whole = range.start === undefined && range.end === undefined;
    const a = await this.ask(fileId, 'GET', whole ? undefined : `bytes=${range.start ?? 0}-${range.end ?? ''}`);
    if (!whole && a.status !== 206) {
      a.body.resume();
      throw new BadRequestError('INVALID_RANGE', `range [${range.start}, ${range.end}] is outside the file`);
    }
    return cutAware(a);
  }

  private async ask(fileId: string, method: 'GET' | 'HEAD', rangeHeader?: string): Promise<RemoteAnswer> {
    const loc = decodeFileId(fileId);
    const map = await this.o.map();
    if (!map) throw new NodeUnavailableError(loc.group, loc.server, 'this node has not heard from its agent about the cluster yet');
    const candidates = readCandidates(map.nodes, loc, { self: map.self, groupCopies: true });
    const a = await readFromNodes(candidates, loc, fileId, {
      secret: this.o.secret, method, headers: rangeHeader ? { range: rangeHeader } : {}, timeoutMs: this.o.timeoutMs,
    });
    if (a.status === 200 || a.status === 206) return a;
    a.body.resume();
    if (a.status === 404) throw new NotFoundError('FILE_NOT_FOUND', 'no file has this fileid');
    if (a.status === 416) throw new RangeNotSatisfiableError(loc.size);
    throw new NodeUnavailableError(loc.group, loc.server, `it answered ${a.status}`);
  }
}

function statOf(fileId: string, a: RemoteAnswer): FileStat {
  const h = a.headers;
  const etag = /^"([0-9a-f]{40})"$/.exec(h.etag ?? '');
  const total = a.status === 206 ? Number(/\/(\d+)$/.exec(h['content-range'] ?? '')?.[1]) : Number(h['content-length']);
  if (!etag || !Number.isSafeInteger(total)) {
    throw new NodeUnavailableError(a.from.group, a.from.server, 'its answer lacks the file\'s ETag or size');
  }
  return {
    fileId,
    fileHash: etag[1],
    size: total,
    mime: (h['content-type'] ?? 'application/octet-stream').split(';')[0].trim(),
    time: Date.parse(h['last-modified'] ?? '') || 0,
  };
}

/** The answer's body, ending in an error (never a clean end) when the node's answer was cut. */
function cutAware(a: RemoteAnswer): Readable {
  const out = new PassThrough();
  a.body.once('close', () => {
    if (!a.body.complete) out.destroy(new NodeUnavailableError(a.from.group, a.from.server, 'its answer was cut'));
  });
  a.body.pipe(out);
  return out;
}
