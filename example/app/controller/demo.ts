import { Controller } from 'egg';

export default class DemoController extends Controller {
  /** POST /demo/upload: one multipart file → its id. */
  async upload() {
    const { ctx } = this;
    const stream = await ctx.getFileStream();
    const result = await ctx.sonofs.upload(stream.mime, stream);
    ctx.body = { fileName: result.fileId, ...result };
  }

  /** GET /demo/file?file=<fileId>: the bytes with their stored type. */
  async file() {
    const { ctx } = this;
    const result = await ctx.sonofs.getFile(String(ctx.query.file));
    ctx.type = result.mime;
    ctx.body = result.buffer;
  }
}
