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
