import 'egg';
import type { SonofsConfig } from '../config/config.default';
import type { SonofsContext } from '../app/lib/context-api';
import type { SonofsStore, UploadSessions } from '../lib';

// `require('egg-sonofs')` is lib/index.js (package.json `main`): the same API, typed.
export * from '../lib';
export type { SonofsConfig, AuthenticateHook, UserId } from '../config/config.default';
export type { SonofsContext, CtxUploadOptions } from '../app/lib/context-api';
export type { SonofsPageOptions } from '../app/lib/page/options';

declare module 'egg' {
  interface Context {
    /** The file store as seen by this request's user. */
    sonofs: SonofsContext;
  }
  interface Application {
    /** The node's store engine (pass the user explicitly). */
    sonofs: SonofsStore;
    /** The node's resumable-upload sessions (tus, chunked upload, fupload tasks). */
    sonofsUploads: UploadSessions;
  }
  interface EggAppConfig {
    sonofs: SonofsConfig;
  }
}
