'use strict';
// Upload helpers shared by the scenarios: many distinct small uploads from one
// template, and one big streamed upload.
const crypto = require('node:crypto');
const { Transform } = require('node:stream');
const { performance } = require('node:perf_hooks');
const { request, expectJson } = require('./http-client');
const { multipartBuffer, multipartStream } = require('./multipart');
const { sha1Hex } = require('./system');

const UPLOAD_PATH = '/file/upload';

/**
 * Small upload bodies from one random template: each lane owns one prebuilt
 * multipart body and stamps (tag, index) into the file's first 12 bytes per
 * request, so every upload has distinct content (sonofs deduplicates) at no cost.
 */
class SmallUploads {
  constructor(size, lanes) {
    if (size < 12) throw new Error('--size-kib too small');
    this.size = size;
    this.template = crypto.randomBytes(size);
    this.lanes = Array.from({ length: lanes }, () => multipartBuffer(this.template, { filename: 'bench-small.bin' }));
  }

  /** The body for upload `index` of a phase `tag` (8 random bytes), in lane `lane`'s buffer. */
  body(lane, tag, index) {
    const { body, headers, contentOffset } = this.lanes[lane];
    stamp(body, contentOffset, tag, index);
    return { body, headers };
  }

  /**
   * sha1 of what lane `lane` sent last: the whole body (`wholeBody`, for a peer
   * that stores the body as it came) or only the file content. Valid until the
   * lane sends its next upload.
   */
  laneSha1(lane, wholeBody) {
    const { body, contentOffset } = this.lanes[lane];
    return sha1Hex(wholeBody ? body : body.subarray(contentOffset, contentOffset + this.size));
  }

  /** Length of every multipart body sent (the lanes differ only in their random boundary, of fixed length). */
  get bodyLength() {
    return this.lanes[0].body.length;
  }

  /** The file content upload (tag, index) sent, rebuilt for checking. */
  content(tag, index) {
    const content = Buffer.from(this.template);
    stamp(content, 0, tag, index);
    return content;
  }
}

function stamp(buffer, offset, tag, index) {
  tag.copy(buffer, offset);
  buffer.writeUInt32BE(index, offset + 8);
}

/** One small upload through `agent`; resolves to the answer's `data` after peer.checkUpload. */
async function uploadSmall(peer, port, agent, uploads, lane, tag, index) {
  const { body, headers } = uploads.body(lane, tag, index);
  const res = await request({ agent, port, method: 'POST', path: UPLOAD_PATH, headers: { ...headers, accept: 'application/json' }, body });
  const answer = expectJson(res);
  if (answer.code !== 0) throw new Error(`code ${answer.code}: ${answer.msg}`);
  peer.checkUpload(answer.data, { size: uploads.size, bodyLength: body.length });
  return answer.data;
}

/**
 * One streamed upload of big = { file, size, sha1 } on its own connection.
 * Resolves to { data, seconds (request start to full answer), bodySha1 }; bodySha1
 * (sha1 of the whole multipart body) only with `hashBody`, which costs client CPU.
 * Throws on a failed or wrong answer.
 */
async function uploadBig(peer, port, big, { hashBody = false } = {}) {
  const { body, headers, length } = multipartStream(big.file, big.size, { filename: 'bench-big.bin' });
  let sent = body;
  let bodyHash;
  if (hashBody) {
    bodyHash = crypto.createHash('sha1');
    sent = body.pipe(new Transform({ transform(chunk, _encoding, callback) { bodyHash.update(chunk); callback(null, chunk); } }));
    body.once('error', err => sent.destroy(err));
  }
  const start = performance.now();
  const res = await request({ agent: false, port, method: 'POST', path: UPLOAD_PATH, headers: { ...headers, accept: 'application/json' }, body: sent });
  const seconds = (performance.now() - start) / 1000;
  const answer = expectJson(res);
  if (answer.code !== 0) throw new Error(`code ${answer.code}: ${answer.msg}`);
  peer.checkUpload(answer.data, { size: big.size, sha1: big.sha1, bodyLength: length });
  return { data: answer.data, seconds, bodySha1: bodyHash && bodyHash.digest('hex') };
}

module.exports = { SmallUploads, uploadSmall, uploadBig, UPLOAD_PATH };
