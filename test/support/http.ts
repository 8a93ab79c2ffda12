import http from 'node:http';
import net from 'node:net';
import { randomBytes, createHash } from 'node:crypto';

/** supertest parser that keeps binary bodies as a Buffer. */
export function binaryParser(res: any, cb: (err: Error | null, body: Buffer) => void) {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
}

export function sha1(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}

/**
 * A multipart/form-data body built by hand, so tests control the exact bytes
 * of file names (NUL, `../`, 300 characters) that form libraries would clean.
 */
export function multipart(parts: Array<{ name: string; filename?: string; filenameStar?: string; type?: string; data: Buffer | string }>) {
  const boundary = `----sonofs${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    if (p.filenameStar !== undefined) head += `; filename*=UTF-8''${p.filenameStar}`;
    head += '\r\n';
    if (p.type) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`, 'utf8'), Buffer.from(p.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

export interface SimpleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): any;
}

/** One HTTP request on a fresh connection (so the master spreads them over workers). */
export function request(url: string, opts: { method?: string; headers?: Record<string, string | number>; body?: Buffer } = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: { Connection: 'close', ...opts.headers }, agent: false }, res => {
      const chunks: Buffer[] = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString()) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** POST /file/upload as a JSON client; resolves to the response. */
export function uploadTo(base: string, data: Buffer, filename = 'f.bin', headers: Record<string, string> = {}) {
  const { body, contentType } = multipart([ { name: 'file', filename, data } ]);
  return request(`${base}/file/upload`, {
    method: 'POST', body, headers: { Accept: 'application/json', 'Content-Type': contentType, 'Content-Length': body.length, ...headers },
  });
}

/** A port free right now on loopback (tests run beside other suites on this machine). */
export async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise(r => srv.once('listening', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise(r => srv.close(r));
  return port;
}

/** A loopback server that keeps the JSON body of every POST it gets (fupload's completion callbacks). */
export interface JsonSink {
  url: string;
  received: any[];
  close(): Promise<void>;
}

export async function startJsonSink(urlPath = '/notify'): Promise<JsonSink> {
  const received: any[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString()));
      res.end('ok');
    });
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}${urlPath}`, received, close: () => new Promise(r => server.close(() => r())) };
}
