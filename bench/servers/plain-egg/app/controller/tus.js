'use strict';
// For the egg-floor bound of bench/tus.js only: the least a tus server on Egg
// must do. POST answers 201 with a Location (and, with a body, the bytes it
// counted); PATCH counts its body and answers 204 with the new offset. Nothing is
// stored, checked or remembered, so no other tus request is answered.
const crypto = require('node:crypto');
const { Controller } = require('egg');

async function drain(req) {
  let size = 0;
  for await (const chunk of req) size += chunk.length;
  return size;
}

class TusController extends Controller {
  async create() {
    const { ctx } = this;
    ctx.set('Tus-Resumable', '1.0.0');
    if (!ctx.get('Upload-Length')) {
      ctx.status = 400;
      ctx.body = { msg: 'Upload-Length needed' };
      return;
    }
    const id = crypto.randomBytes(16).toString('base64url');
    if (ctx.get('Content-Type') === 'application/offset+octet-stream') ctx.set('Upload-Offset', String(await drain(ctx.req)));
    ctx.set('Location', `http://${ctx.host}/files/${id}`);
    ctx.status = 201;
  }

  async patch() {
    const { ctx } = this;
    const offset = Number(ctx.get('Upload-Offset'));
    const size = await drain(ctx.req);
    ctx.set('Tus-Resumable', '1.0.0');
    ctx.set('Upload-Offset', String(offset + size));
    ctx.status = 204;
  }
}

module.exports = TusController;
