import type { SonofsStore, UploadSessions } from '../../lib';
import { SESSIONS, STORE } from '../lib/symbols';

export default {
  /** The node's store engine, for code outside a request (pass `user` yourself). */
  get sonofs(): SonofsStore {
    return (this as any)[STORE];
  },

  /** The node's resumable-upload sessions (tus, chunked upload, fupload tasks). */
  get sonofsUploads(): UploadSessions {
    return (this as any)[SESSIONS];
  },
};
