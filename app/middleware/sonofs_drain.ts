import type { Context } from 'egg';
import { requestDrain } from '../lib/drain';

/** First middleware of the app: counts requests in progress for a graceful shutdown (see app/lib/drain.ts). */
export default () => {
  return (ctx: Context, next: () => Promise<void>) => requestDrain(ctx.app).track(next);
};
