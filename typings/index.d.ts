import 'egg';
import type { SonofsConfig } from '../config/config.default';
import type { SonofsContext } from '../app/lib/context-api';
import type { SonofsStore } from '../lib';

declare module 'egg' {
  interface Context {
    /** The file store as seen by this request's user. */
    sonofs: SonofsContext;
  }
  interface Application {
    /** The node's store engine (pass the user explicitly). */
    sonofs: SonofsStore;
  }
  interface EggAppConfig {
    sonofs: SonofsConfig;
  }
}
