import type { Context } from 'egg';

/** Shows which worker process answered: the demo runs several. */
export default () => async function servedBy(ctx: Context, next: () => Promise<void>) {
  ctx.set('X-Served-By', String(process.pid));
  await next();
};
