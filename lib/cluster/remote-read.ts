import http, { IncomingMessage } from 'node:http';
import https from 'node:https';
import { NodeUnavailableError } from '../errors';
import { NODE_AUTH_HEADER, signNodeRequest } from './node-auth';
import type { ReadCandidate } from './read-candidates';

/** The node-to-node read of a file this node holds: GET or HEAD `<NODE_FILE_PATH><fileid>`, signed. */
export const NODE_FILE_PATH = '/_sonofs/node/file/';

/** Request headers a read passes on to the node serving it: the range and conditional ones. */
export const FORWARDED_REQUEST_HEADERS = [ 'range', 'if-range', 'if-none-match', 'if-modified-since' ] as const;

/** Response headers it passes back to the client, as the serving node set them. */
export const FORWARDED_RESPONSE_HEADERS = [
  'content-type', 'content-length', 'content-range', 'content-disposition', 'etag', 'last-modified', 'accept-ranges',
] as const;

export interface RemoteReadOptions {
  /** the cluster secret every node shares */
  secret: string;
  method: 'GET' | 'HEAD';
  /** the client's range and conditional headers */
  headers: Partial<Record<typeof FORWARDED_REQUEST_HEADERS[number], string>>;
  /**
   * A node must take the connection and send its answer's headers within
   * this (ms), and may not fall silent longer than this while its body is
   * read; a client that reads slowly does not count against it.
   */
  timeoutMs: number;
}

export interface RemoteAnswer {
  /** which node answered */
  from: ReadCandidate;
  status: number;
  /** FORWARDED_RESPONSE_HEADERS the node sent */
  headers: Record<string, string>;
  /** the body as it arrives; a cut answer ends in an error and `complete` false */
  body: IncomingMessage;
}

// Connections to other nodes are kept open between reads.
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };

/**
 * Reads a file from the first candidate that answers it: a node that cannot
 * be reached, does not answer in time, refuses our signature or fails (5xx)
 * is skipped for the next. The file's own server's answer is final (404
 * included); another member's 404 is skipped, as it may not have caught up.
 * Throws NodeUnavailableError when no candidate answered.
 */
export async function readFromNodes(
  candidates: ReadonlyArray<ReadCandidate>, file: { group: number; server: number }, fileId: string, opts: RemoteReadOptions,
): Promise<RemoteAnswer> {
  if (!candidates.length) throw new NodeUnavailableError(file.group, file.server, 'no node holding it is in the cluster map');
  const tried: string[] = [];
  let reason = '';
  for (const c of candidates) {
    const who = `${c.group}.${c.server} at ${c.url}`;
    let res: IncomingMessage;
    try {
      res = await askNode(c, fileId, opts);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // what the client is told names no address; the log gets the whole message
      reason = e.code === 'ECONNREFUSED' ? 'it refused the connection' : e.code ? `network error ${e.code}` : e.message;
      tried.push(`${who}: ${e.message}`);
      continue;
    }
    const status = res.statusCode ?? 0;
    if (status >= 500 || status === 401 || (status === 404 && !c.own)) {
      res.destroy();
      reason = status === 401 ? 'it refused this node\'s signature' : `it answered ${status}`;
      tried.push(`${who}: ${reason}${status === 401 ? ' (is cluster.secret the same on every node, and are their clocks within a minute?)' : ''}`);
      continue;
    }
    const headers: Record<string, string> = {};
    for (const h of FORWARDED_RESPONSE_HEADERS) {
      const v = res.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    return { from: c, status, headers, body: res };
  }
  throw new NodeUnavailableError(file.group, file.server, tried.length > 1 ? `${tried.length} nodes tried` : reason, tried);
}

/** One signed request; resolves at the answer's headers. A kept-alive connection the node had closed is retried once. */
function askNode(c: ReadCandidate, fileId: string, o: RemoteReadOptions, retry = true): Promise<IncomingMessage> {
  // fileId is a checked file id (base64url), so it is a path segment as it is
  const url = new URL(`${c.url}${NODE_FILE_PATH}${fileId}`);
  const headers: Record<string, string> = { [NODE_AUTH_HEADER]: signNodeRequest(o.secret, o.method, url.pathname) };
  for (const h of FORWARDED_REQUEST_HEADERS) if (o.headers[h] !== undefined) headers[h] = o.headers[h]!;
  return new Promise((resolve, reject) => {
    const req = url.protocol === 'https:'
      ? https.request(url, { method: o.method, headers, agent: agents['https:'] })
      : http.request(url, { method: o.method, headers, agent: agents['http:'] });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    req.once('response', res => {
      clearTimeout(timer);
      // a cut answer shows as `complete` false at 'close'; this keeps its error from going unheard meanwhile
      res.on('error', () => undefined);
      watchSilence(res, o.timeoutMs);
      resolve(res);
    });
    req.once('error', err => {
      clearTimeout(timer);
      if (retry && req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET') resolve(askNode(c, fileId, o, false));
      else reject(err);
    });
    req.end();
  });
}

/**
 * Cuts an answer whose node stops sending mid-body (hung, paused, a network
 * that drops packets) instead of leaving the client waiting for ever. Time
 * spent while nobody reads the body (a slow client, backpressure) is not silence.
 */
function watchSilence(res: IncomingMessage, ms: number): void {
  const socket = res.socket;
  const timer = setTimeout(function check() {
    if (res.readableFlowing !== true) timer.refresh();
    else res.destroy(new Error(`the serving node sent nothing for ${ms} ms`));
  }, ms).unref();
  const alive = () => timer.refresh();
  socket?.on('data', alive);
  res.once('close', () => {
    clearTimeout(timer);
    socket?.removeListener('data', alive);
  });
}
