import type { Context } from 'egg';
import { SonofsContext } from '../lib/context-api';
import { STORE } from '../lib/symbols';

const FACADE = Symbol('sonofs#context');

export default {
  /** The file store, as seen by this request's user. */
  get sonofs(): SonofsContext {
    const ctx = this as unknown as Context & { [FACADE]?: SonofsContext };
    ctx[FACADE] ??= new SonofsContext(ctx, (ctx.app as any)[STORE]);
    return ctx[FACADE]!;
  },
};
