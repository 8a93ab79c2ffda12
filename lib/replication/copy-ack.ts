import http from 'node:http';
import https from 'node:https';
import { NODE_AUTH_HEADER, signNodeRequest } from '../cluster/node-auth';
import { readText } from './node-client';
import { NODE_API } from './replicator';

/** Node-to-node path a writer asks a member of its group to copy a new record through. */
export const COPY_NOW_PATH = `${NODE_API}/copy-now`;

/** A record just made durable on the writer: the range a member must hold for it to count as a copy. */
export interface NewRecord {
  bundle: number;
  start: number;
  end: number;
}

export interface CopyMember {
  group: number;
  server: number;
  url: string;
}

export interface CopyAckOptions {
  self: { group: number; server: number; instance: string };
  secret: string;
  /** how long a member may take to confirm (ms) */
  timeoutMs: number;
}

/** What each member said: `copied` false after a timeout, a refusal or a network error (`why`). */
export interface MemberAck {
  member: CopyMember;
  copied: boolean;
  why?: string;
}

const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };

/** The query a copy-now request carries (the writer's identity and the record's range). */
export function copyNowQuery(self: CopyAckOptions['self'], rec: NewRecord, timeoutMs: number): string {
  const q = new URLSearchParams({
    group: String(self.group), server: String(self.server), instance: self.instance,
    bundle: String(rec.bundle), start: String(rec.start), end: String(rec.end), timeout: String(timeoutMs),
  });
  return q.toString();
}

/**
 * Replication 'all': asks every member at once to copy `rec` from this node
 * now, and resolves once each has confirmed it holds the record synced, or
 * failed to within the timeout. Never rejects: a member that cannot confirm
 * is reported, and copies it later like any record.
 */
export function askMembersToCopy(members: ReadonlyArray<CopyMember>, rec: NewRecord, o: CopyAckOptions): Promise<MemberAck[]> {
  return Promise.all(members.map(m => askOne(m, rec, o).then(
    copied => ({ member: m, copied, why: copied ? undefined : 'it could not copy the record in time' }),
    (err: Error) => ({ member: m, copied: false, why: err.message }),
  )));
}

function askOne(m: CopyMember, rec: NewRecord, o: CopyAckOptions): Promise<boolean> {
  // the member waits up to the timeout; its answer gets a little longer to arrive
  const path = `${COPY_NOW_PATH}?${copyNowQuery(o.self, rec, o.timeoutMs)}`;
  const url = new URL(m.url.replace(/\/+$/, '') + path);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      headers: { [NODE_AUTH_HEADER]: signNodeRequest(o.secret, 'POST', path), 'Content-Length': 0 },
      agent: agents[url.protocol === 'https:' ? 'https:' : 'http:'],
    }, res => {
      readText(res, 4096).then(text => {
        clearTimeout(timer);
        if (res.statusCode !== 200) return reject(new Error(`it answered ${res.statusCode}: ${text.slice(0, 200)}`));
        try {
          resolve(JSON.parse(text).copied === true);
        } catch {
          reject(new Error('its answer is not JSON'));
        }
      }, reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs + 1000);
    req.on('error', err => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
