import http from 'node:http';
import https from 'node:https';
import { pipeline, Readable } from 'node:stream';
import { SonofsError, UnavailableError } from '../errors';
import { NODE_AUTH_HEADER, signNodeRequest } from './node-auth';
import type { PlacementTarget } from './placement';

/** The node-to-node upload: POST `<NODE_UPLOAD_PATH>?user=&name=&mime=&bound=`, signed, the file's bytes as the body. */
export const NODE_UPLOAD_PATH = '/_sonofs/node/upload';

export interface ForwardUploadOptions {
  /** the cluster secret every node shares */
  secret: string;
  user: string;
  filename?: string;
  mime?: string;
  /** exact size, when known (sent as Content-Length; else the body is chunked) */
  size?: number;
  /** the most bytes the upload can hold (the client's request length), so the target can reserve space without the exact size */
  sizeBound?: number;
  /** a target must take the connection within this (ms); a failed connection tries the next target */
  connectTimeoutMs: number;
  /** once every byte is sent, the target must answer within this (ms) */
  answerTimeoutMs: number;
}

/** What the target answered: its stored file, as its store reported it. */
export interface ForwardedUpload<T> {
  from: PlacementTarget;
  result: T;
}

/**
 * Streams `source` to the first target that takes the connection; only a
 * target that could not be reached (no byte of `source` read yet) is
 * skipped for the next. A target that fails once bytes flow, or answers an
 * error, ends the upload: a 4xx is passed on as the target said it, anything
 * else is a 503. The body is piped, so no more than a stream's buffers is
 * held here.
 */
export async function forwardUpload<T>(
  targets: ReadonlyArray<PlacementTarget>, source: Readable, o: ForwardUploadOptions,
): Promise<ForwardedUpload<T>> {
  const tried: string[] = [];
  for (const t of targets) {
    try {
      return { from: t, result: await sendTo<T>(t, source, o) };
    } catch (err) {
      const e = err as Error & { beforeBody?: boolean };
      tried.push(`${t.group}.${t.server} at ${t.url}: ${e.message}`);
      if (!e.beforeBody) throw err;
    }
  }
  source.resume();
  throw Object.assign(new UnavailableError('PLACEMENT_UNAVAILABLE',
    `the group chosen for this upload cannot take it now (${targets.length ? 'no member took the connection' : 'no member is up'}); retry later`),
  { details: tried });
}

function sendTo<T>(t: PlacementTarget, source: Readable, o: ForwardUploadOptions): Promise<T> {
  const q = new URLSearchParams({ user: o.user });
  if (o.filename !== undefined) q.set('name', o.filename);
  if (o.mime !== undefined) q.set('mime', o.mime);
  if (o.sizeBound !== undefined) q.set('bound', String(o.sizeBound));
  const url = new URL(`${t.url}${NODE_UPLOAD_PATH}?${q}`);
  const headers: Record<string, string> = {
    [NODE_AUTH_HEADER]: signNodeRequest(o.secret, 'POST', `${url.pathname}${url.search}`),
    'content-type': 'application/octet-stream',
    accept: 'application/json',
  };
  if (o.size !== undefined) headers['content-length'] = String(o.size);
  return new Promise<T>((resolve, reject) => {
    let started = false;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (started) {
        // the source may be mid-way: stop it so the client's request ends too
        source.destroy();
        reject(err instanceof SonofsError ? err : new UnavailableError('PLACEMENT_FAILED', `the node storing this upload failed mid-way (${err.message}); nothing was stored, retry`));
      } else {
        reject(Object.assign(err, { beforeBody: true }));
      }
    };
    // a new connection per upload: a kept-alive one the target had closed would fail after bytes were read
    const req = (url.protocol === 'https:' ? https : http).request(url, { method: 'POST', headers, agent: false });
    let timer = setTimeout(() => fail(new Error(`no connection within ${o.connectTimeoutMs} ms`)), o.connectTimeoutMs);
    req.once('socket', socket => socket.once('connect', () => {
      clearTimeout(timer);
      started = true;
      pipeline(source, req, err => {
        if (err) return fail(err);
        timer = setTimeout(() => fail(new Error(`no answer within ${o.answerTimeoutMs} ms after the last byte`)), o.answerTimeoutMs);
      });
    }));
    req.once('error', fail);
    req.once('response', res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', fail);
      res.once('end', () => {
        if (settled) return;
        const status = res.statusCode ?? 0;
        let body: any;
        try { body = JSON.parse(Buffer.concat(chunks).toString()); } catch { body = undefined; }
        if (status === 200 && body?.fileId) {
          settled = true;
          clearTimeout(timer);
          return resolve(body as T);
        }
        if (status >= 400 && status < 500 && status !== 401 && typeof body?.code === 'string') {
          return fail(new SonofsError(status, body.code, String(body.msg ?? 'refused by the node storing it')));
        }
        fail(new Error(status === 401 ? 'it refused this node\'s signature (is cluster.secret the same on every node?)' : `it answered ${status}`));
      });
    });
  });
}
