import http from 'node:http';
import https from 'node:https';
import { NODE_AUTH_HEADER, signNodeRequest } from '../cluster/node-auth';

export interface NodeGetOptions {
  signal?: AbortSignal;
  /** idle time of the connection before the call fails (ms) */
  timeoutMs?: number;
  agents?: { http?: http.Agent; https?: https.Agent };
}

/**
 * GET `path` (with its query) of another node, signed with the cluster
 * secret. Resolves with the response once it answers 200 (its body still to
 * read, as a stream); rejects with the node's own error text otherwise.
 */
export function nodeGet(base: string, path: string, secret: string, opts: NodeGetOptions = {}): Promise<http.IncomingMessage> {
  const url = new URL(base.replace(/\/+$/, '') + path);
  const tls = url.protocol === 'https:';
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).get(url, {
      headers: { [NODE_AUTH_HEADER]: signNodeRequest(secret, 'GET', path) },
      agent: tls ? opts.agents?.https : opts.agents?.http,
      signal: opts.signal,
      timeout,
    }, res => {
      if (res.statusCode === 200) return resolve(res);
      readText(res, 2048).then(text => reject(new Error(`${base} answered ${res.statusCode} to GET ${path.split('?')[0]}: ${text}`)), reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${base} sent nothing for ${timeout} ms`)));
    req.on('error', reject);
  });
}

/** The first `limit` bytes of a body as text (the rest is dropped). */
export async function readText(res: http.IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    if (n < limit) chunks.push(c);
    n += c.length;
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}
