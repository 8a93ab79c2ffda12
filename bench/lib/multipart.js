'use strict';
// multipart/form-data bodies with one file part, for a file whose size is
// known up front: small ones as one Buffer, big ones as a stream with an
// exact Content-Length (never held in memory).
const crypto = require('node:crypto');
const fs = require('node:fs');
const { Readable } = require('node:stream');

/** Head and tail framing one file part, and the request headers for `size` bytes of content. */
function multipartFrame({ size, field = 'file', filename = 'upload.bin', contentType = 'application/octet-stream' }) {
  const boundary = `----bench${crypto.randomBytes(12).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\n` +
    `Content-Disposition: form-data; name="${field}"; filename="${filename}"\r\n` +
    `Content-Type: ${contentType}\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = head.length + size + tail.length;
  const headers = { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(length) };
  return { head, tail, length, headers };
}

/**
 * The whole body in one Buffer. `contentOffset` is where the file bytes start,
 * so a caller can rewrite a few of them per request instead of building a new body.
 */
function multipartBuffer(content, options = {}) {
  const { head, tail, headers } = multipartFrame({ ...options, size: content.length });
  return { body: Buffer.concat([ head, content, tail ]), headers, contentOffset: head.length };
}

/**
 * A streamed body: `source` is a file path or a function returning an async
 * iterable of Buffers; it must yield exactly `size` bytes (checked).
 */
function multipartStream(source, size, options = {}) {
  const { head, tail, headers, length } = multipartFrame({ ...options, size });
  const chunks = typeof source === 'string' ? () => fs.createReadStream(source, { highWaterMark: 1024 * 1024 }) : source;
  async function* parts() {
    yield head;
    let sent = 0;
    for await (const chunk of chunks()) {
      sent += chunk.length;
      yield chunk;
    }
    if (sent !== size) throw new Error(`multipart source gave ${sent} bytes, Content-Length promised ${size}`);
    yield tail;
  }
  return { body: Readable.from(parts(), { objectMode: false }), headers, length };
}

module.exports = { multipartFrame, multipartBuffer, multipartStream };
