'use strict';
// The usual Egg upload/download controller: egg-multipart's getFileStream()
// streamed to one file per upload, sha1 computed on the way, metadata in one
// JSON file per upload, downloads streamed back with fs streams. No fsync
// (fs.createWriteStream does not), no database: the simplest thing that works.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Transform } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const sendToWormhole = require('stream-wormhole');
const { Controller } = require('egg');

const FILE_ID = /^[0-9a-f]{32}$/;

/** "2006-01-02 15:04:05" in local time, the format the demo answers with. */
function uploadTime(ms) {
  const d = new Date(ms);
  const p = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

class FileController extends Controller {
  paths(id) {
    const { dataDir } = this.config.plainEgg;
    return { file: path.join(dataDir, 'files', id), meta: path.join(dataDir, 'meta', `${id}.json`) };
  }

  async upload() {
    const { ctx } = this;
    if (this.config.plainEgg.discard) return this.discard();
    const stream = await ctx.getFileStream();
    const id = crypto.randomBytes(16).toString('hex');
    const { file, meta } = this.paths(id);
    const sha1 = crypto.createHash('sha1');
    let size = 0;
    const hashing = new Transform({
      transform(chunk, _encoding, callback) {
        sha1.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      await pipeline(stream, hashing, fs.createWriteStream(file));
    } catch (err) {
      await sendToWormhole(stream); // drain the rest of the request, as egg's docs do
      await fs.promises.rm(file, { force: true });
      throw err;
    }
    const data = {
      FileSha1: sha1.digest('hex'),
      FileName: stream.filename,
      FileSize: size,
      FileId: id,
      Location: `/file/download?fileid=${id}`,
      UploadAt: uploadTime(Date.now()),
    };
    await fs.promises.writeFile(meta, JSON.stringify(data));
    ctx.body = { code: 0, msg: 'OK', data };
  }

  /**
   * The `egg-floor` peer (PLAIN_EGG_DISCARD=1): egg-multipart parses the body
   * and the file's bytes are only counted, nothing hashed or stored. What any
   * Egg upload route costs before it does its work: a bound for the demo.
   */
  async discard() {
    const { ctx } = this;
    const stream = await ctx.getFileStream();
    let size = 0;
    for await (const chunk of stream) size += chunk.length;
    ctx.body = { code: 0, msg: 'OK', data: { FileName: stream.filename, FileSize: size } };
  }

  async download() {
    const { ctx } = this;
    const id = String(ctx.query.fileid || '');
    if (!FILE_ID.test(id)) {
      ctx.status = 400;
      ctx.body = { code: 'INVALID_FILE_ID', msg: 'fileid must be 32 hex digits' };
      return;
    }
    const { file, meta } = this.paths(id);
    let data;
    try {
      data = JSON.parse(await fs.promises.readFile(meta, 'utf8'));
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
      ctx.status = 404;
      ctx.body = { code: 'FILE_NOT_FOUND', msg: 'no such file' };
      return;
    }
    ctx.attachment(data.FileName);
    ctx.length = data.FileSize;
    ctx.body = fs.createReadStream(file);
  }
}

module.exports = FileController;
