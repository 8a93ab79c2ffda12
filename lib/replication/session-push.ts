import http from 'node:http';
import https from 'node:https';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32c } from '../bundle/record';
import { NODE_AUTH_HEADER, signNodeRequest } from '../cluster/node-auth';
import type { CopyMember, MemberAck } from './copy-ack';
import { readText } from './node-client';
import { NODE_API } from './replicator';

/** Node-to-node path a node sends the acknowledged bytes of an unfinished upload to the members of its group through. */
export const SESSION_BYTES_PATH = `${NODE_API}/session-bytes`;

/** [start, end) of an upload's bytes, read from this node's space. */
export interface SessionBytes {
  id: string;
  start: number;
  end: number;
  open(): Readable;
}

export interface SessionPushOptions {
  self: { group: number; server: number };
  secret: string;
  /** how long a member may take to confirm (ms) */
  timeoutMs: number;
}

const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };

/**
 * Sends the bytes to every member at once; each counts once it answers the
 * crc32c of what it wrote and synced, and that is the crc of what was sent.
 * Never rejects: a member that cannot confirm is reported.
 */
export function pushSessionBytes(members: ReadonlyArray<CopyMember>, b: SessionBytes, o: SessionPushOptions): Promise<MemberAck[]> {
  return Promise.all(members.map(m => pushOne(m, b, o).then(
    () => ({ member: m, copied: true }),
    (err: Error) => ({ member: m, copied: false, why: err.message }),
  )));
}

async function pushOne(m: CopyMember, b: SessionBytes, o: SessionPushOptions): Promise<void> {
  const q = new URLSearchParams({ session: b.id, start: String(b.start), end: String(b.end), group: String(o.self.group), server: String(o.self.server) });
  const path = `${SESSION_BYTES_PATH}?${q}`;
  const url = new URL(m.url.replace(/\/+$/, '') + path);
  let sent = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent = crc32c(chunk, sent);
      cb(null, chunk);
    },
  });
  const req = (url.protocol === 'https:' ? https : http).request(url, {
    method: 'PUT',
    headers: { [NODE_AUTH_HEADER]: signNodeRequest(o.secret, 'PUT', path), 'Content-Length': b.end - b.start, 'Content-Type': 'application/octet-stream' },
    agent: agents[url.protocol === 'https:' ? 'https:' : 'http:'],
  });
  const timer = setTimeout(() => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
  try {
    const answer = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    answer.catch(() => undefined); // when the send fails first, its error is the one thrown
    await pipeline(b.open(), tap, req);
    const res = await answer;
    const text = await readText(res, 4096);
    if (res.statusCode !== 200) throw new Error(`it answered ${res.statusCode}: ${text.slice(0, 200)}`);
    const crc = (JSON.parse(text) as { crc?: unknown }).crc;
    if (crc !== sent) throw new Error(`it wrote bytes whose crc32c is ${crc}, not the ${sent} sent`);
  } finally {
    clearTimeout(timer);
  }
}
