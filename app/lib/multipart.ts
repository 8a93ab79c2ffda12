import type { Context } from 'egg';

/**
 * The multipart parts of a built-in route's body, parsed with the plugin's
 * limits whatever the app set for its own routes (egg-multipart's defaults
 * would refuse files over 10 MB and most extensions): files up to
 * `maxFileSize` (the store answers 413 past it), any name, since sonofs
 * treats names as labels.
 */
export function pluginParts(ctx: Context): AsyncIterator<any> {
  const maxFileSize = ctx.app.config.sonofs.maxFileSize;
  const parts = ctx.multipart({
    autoFields: false,
    checkFile: () => null,
    limits: { fileSize: maxFileSize + 1, files: 10, fields: 10, fieldSize: 100 * 1024, fieldNameSize: 100 },
  } as any);
  return (parts as unknown as AsyncIterable<any>)[Symbol.asyncIterator]();
}
