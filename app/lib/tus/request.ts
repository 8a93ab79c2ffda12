import type { Context } from 'egg';
import type { Session, UploadResult, UploadSessions } from '../../../lib';
import { publicOrigin, uploadUrl } from '../../../lib/tus';
import { forwardedByNode } from '../session-forward';
import { setCopies } from '../copies';
import { SESSIONS } from '../symbols';

/** What a tus session keeps in `extra` (the engine's protocol-specific fields). */
export interface TusExtra {
  /** Upload-Metadata as accepted, echoed by HEAD */
  metadata?: string;
  concat?: 'partial' | 'final';
  /** a final's Upload-Concat as sent, echoed by HEAD */
  concatHeader?: string;
  /** a final's partial upload ids, in order */
  parts?: string[];
  /** a partial's finals still waiting for it (concatenation-unfinished) */
  finals?: string[];
}

export function tusExtra(s: Session): TusExtra {
  return s.extra as TusExtra;
}

/** One tus request: the (possibly overridden) method plus what every handler needs. */
export class TusRequest {
  constructor(readonly ctx: Context, readonly method: string, readonly path: string) {}

  /** Read per request, so a running app can be reconfigured (and tests can mock it). */
  get cfg() {
    return this.ctx.app.config.sonofs.tus;
  }

  get maxSize(): number {
    return this.ctx.app.config.sonofs.maxFileSize;
  }

  get engine(): UploadSessions {
    return (this.ctx.app as any)[SESSIONS];
  }

  /** The request's user: every upload is bound to the one who created it. */
  user(): Promise<string> {
    return this.ctx.sonofs.user();
  }

  header(name: string): string | undefined {
    return this.ctx.get(name) || undefined;
  }

  /** The upload's URL as this client reaches us (behind a trusted proxy: its scheme, host and prefix). */
  url(id: string): string {
    // a request another node placed here carries that node's view of the client (session-forward.ts)
    const trustProxy = this.cfg.trustProxy || this.ctx.app.config.proxy === true || forwardedByNode(this.ctx);
    const encrypted = !!(this.ctx.req.socket as { encrypted?: boolean }).encrypted;
    return uploadUrl(publicOrigin(this.ctx.headers, { trustProxy, encrypted }), this.path, id);
  }

  /** E2: Upload-Expires while the upload can still expire (it cannot once it is a file). */
  setExpires(s: Session): void {
    if (s.state !== 'done') this.ctx.set('Upload-Expires', new Date(s.expires).toUTCString());
  }

  /** A finished upload is an ordinary file: tell the client which. */
  setFile(result: UploadResult | undefined): void {
    if (!result) return;
    this.ctx.set('Sonofs-File-Id', result.fileId);
    this.ctx.set('Sonofs-File-Hash', result.fileHash);
    setCopies(this.ctx, result);
  }
}
