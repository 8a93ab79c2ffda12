import type { SonofsStore } from '../../lib';
import { STORE } from '../lib/symbols';

export default {
  /** The node's store engine, for code outside a request (pass `user` yourself). */
  get sonofs(): SonofsStore {
    return (this as any)[STORE];
  },
};
