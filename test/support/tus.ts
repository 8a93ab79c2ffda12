import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { SimpleResponse } from './http';

export const TUS = { 'Tus-Resumable': '1.0.0' };
export const OFFSET = 'application/offset+octet-stream';

export function digest(algorithm: string, data: Buffer): string {
  return createHash(algorithm).update(data).digest('base64');
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The path of an upload URL (Location may be absolute). */
export function pathOf(location: string): string {
  return new URL(location, 'http://x').pathname;
}

/**
 * Writes a raw HTTP/1.1 request head (and optionally part of a body) on a new
 * socket and resolves with whatever the server answers first: for checks that
 * the server answers *without* reading a body the client has not sent.
 */
export function rawHead(port: number, head: string, body?: Buffer, waitMs = 3000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(head);
      if (body) sock.write(body);
    });
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer within ${waitMs} ms; got: ${text}`));
    }, waitMs);
    sock.on('data', d => {
      text += d.toString('latin1');
      if (/\r\n\r\n/.test(text)) {
        clearTimeout(timer);
        sock.destroy();
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), text });
      }
    });
    sock.on('error', err => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Sends a PATCH with a chunked body and an Upload-Checksum trailer
 * (checksum-trailer), on its own connection.
 */
export function patchWithTrailer(base: string, path: string, offset: number, body: Buffer, trailer: string | undefined, headers: Record<string, string> = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, {
      method: 'PATCH', agent: false,
      headers: { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': OFFSET, Trailer: 'Upload-Checksum', ...headers },
    }, res => {
      const chunks: Buffer[] = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body: b, json: () => JSON.parse(b.toString()) });
      });
    });
    req.on('error', reject);
    // two chunks, so the body really is chunked
    req.write(body.subarray(0, body.length >> 1));
    req.write(body.subarray(body.length >> 1));
    if (trailer !== undefined) req.addTrailers({ 'Upload-Checksum': trailer });
    req.end();
  });
}

export interface RawAnswer { status: number; head: string; headers: Record<string, string>; body: Buffer }

/** The first HTTP response on a socket, read by hand: what a client gets, without a client's forgiveness. */
export function readAnswer(sock: net.Socket, ms = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no whole answer in ${ms} ms: ${got.toString().slice(0, 300)}`)), ms);
    const parse = (): RawAnswer | undefined => {
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const head = got.subarray(0, end).toString();
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
      const body = got.subarray(end + 4);
      const length = Number(headers['content-length'] ?? 0);
      if (body.length < length) return undefined;
      return { status: Number(head.split(' ')[1]), head, headers, body: body.subarray(0, length) };
    };
    const done = (err?: Error, answer?: RawAnswer) => {
      clearTimeout(timer);
      sock.off('data', onData);
      if (answer) resolve(answer); else reject(err);
    };
    const onData = (d: Buffer) => {
      got = Buffer.concat([ got, d ]);
      const answer = parse();
      if (answer) done(undefined, answer);
    };
    sock.on('data', onData);
    sock.once('close', () => done(new Error(`closed before a whole answer: ${got.toString().slice(0, 300)}`)));
  });
}
