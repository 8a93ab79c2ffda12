import * as tus from 'tus-js-client';
import { errorText } from './api';
import { auth } from './auth';
import type { PageConfig } from './config';

/** How a transfer ended; `paused` and `cancelled` were the user's doing. */
export type Outcome = { kind: 'stored'; fileId?: string; sha1?: string } | { kind: 'paused' } | { kind: 'cancelled' };

export interface TransferEvents {
  progress(sent: number, total: number): void;
  /** the server has this many bytes (a chunk was acknowledged) */
  accepted(bytes: number): void;
  /** a request failed; the next try comes after `delayMs` */
  retrying(delayMs: number, reason: string): void;
  /** the server answered again after a retry */
  reconnected(): void;
}

/** One file's way to the store: resumable (tus) or a plain form post. */
export interface Transfer {
  /** whether it can stop and go on later from where it stopped */
  readonly resumable: boolean;
  /** resolves when stored, paused or cancelled; rejects with the server's words */
  run(): Promise<Outcome>;
  pause(): void;
  cancel(): Promise<void>;
}

/** Only these prefixes are the page's in tus-js-client's storage (localStorage `tus::<fingerprint>::<n>`). */
export const FINGERPRINT_PREFIX = 'sonofs|';

/**
 * Which stored upload a file continues: its user, name (with its folder),
 * type, size, modification time and the endpoint, so the same file picked
 * again after a reload finds its upload and another file never does.
 */
export function fingerprint(file: File, options: { endpoint?: string | null; metadata?: Record<string, string> }): Promise<string> {
  const name = options.metadata?.filename ?? file.name;
  return Promise.resolve([ 'sonofs', auth.tag(), name, file.type, file.size, file.lastModified, options.endpoint ].join('|'));
}

/** The text of a failed tus request: the server's `msg`, or what went wrong on the way. */
export function tusErrorText(err: unknown): string {
  const e = err as tus.DetailedError;
  const res = e?.originalResponse;
  if (res) return errorText(res.getStatus(), res.getBody() ?? '');
  if (e?.originalRequest) return 'the server could not be reached';
  return (e as Error)?.message ?? String(err);
}

/** tus-js-client's own rule: retry what may pass later (network, 5xx, 409 offset, 423 locked), not what was refused. */
function mayPassLater(err: tus.DetailedError): boolean {
  const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
  return (status < 400 || status >= 500 || status === 409 || status === 423) && navigator.onLine !== false;
}

export class TusTransfer implements Transfer {
  readonly resumable = true;
  private readonly upload: tus.Upload;
  private settle: { resolve(o: Outcome): void; reject(e: Error): void } | undefined;
  private retrying = false;

  constructor(file: File, name: string, cfg: PageConfig, events: TransferEvents) {
    const metadata: Record<string, string> = { filename: name };
    if (file.type) metadata.filetype = file.type;
    this.upload = new tus.Upload(file, {
      endpoint: new URL(cfg.tusEndpoint!, location.href).href,
      chunkSize: cfg.chunkSize,
      retryDelays: cfg.retryDelays,
      metadata,
      fingerprint,
      // a file of one chunk rides on the creation: one request (the store keeps it in one go). A larger one
      // is created first, so that its URL is stored before any of its bytes go: a cut in the first chunk resumes too
      uploadDataDuringCreation: file.size <= cfg.chunkSize,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      // the token as it is now, also for retries after the user signed in again
      onBeforeRequest: req => {
        for (const [ k, v ] of Object.entries(auth.headers())) req.setHeader(k, v);
      },
      onAfterResponse: () => {
        if (!this.retrying) return;
        this.retrying = false;
        events.reconnected();
      },
      onProgress: (sent, total) => events.progress(sent, total),
      onChunkComplete: (_chunk, accepted) => events.accepted(accepted),
      onShouldRetry: (err, attempt, options) => {
        if (!mayPassLater(err)) return false;
        this.retrying = true;
        events.retrying(options.retryDelays?.[attempt] ?? 0, tusErrorText(err));
        return true;
      },
      onSuccess: ({ lastResponse }) => this.settle?.resolve({
        kind: 'stored',
        fileId: lastResponse.getHeader('Sonofs-File-Id') || undefined,
        sha1: lastResponse.getHeader('Sonofs-File-Hash') || undefined,
      }),
      onError: err => this.settle?.reject(new Error(tusErrorText(err))),
    });
  }

  /** the unfinished upload of this same file in this browser (by fingerprint), if any: it goes on from there */
  async findPrevious(): Promise<tus.PreviousUpload | undefined> {
    const previous = await this.upload.findPreviousUploads();
    // the newest one: an older entry may point at an upload the server let expire
    previous.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime));
    return previous[0];
  }

  resumeFrom(previous: tus.PreviousUpload): void {
    this.upload.resumeFromPreviousUpload(previous);
  }

  get url(): string | null {
    return this.upload.url;
  }

  run(): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      this.settle = { resolve, reject };
      this.upload.start();
    });
  }

  pause(): void {
    void this.upload.abort(false);
    this.settle?.resolve({ kind: 'paused' });
  }

  /** stops, and frees the server's bytes (tus termination) and this browser's note of the upload */
  async cancel(): Promise<void> {
    const url = this.upload.url;
    this.settle?.resolve({ kind: 'cancelled' });
    try {
      await this.upload.abort(true);
    } catch {
      // the server is away: it removes the upload when it expires; forget it here all the same
      if (url) await forgetStoredUpload(url);
    }
  }
}

/** Removes tus-js-client's notes of an upload URL from this browser. */
export async function forgetStoredUpload(url: string): Promise<void> {
  const storage = tus.defaultOptions.urlStorage;
  for (const entry of await storage.findAllUploads()) {
    if (entry.uploadUrl === url) await storage.removeUpload(entry.urlStorageKey);
  }
}

/**
 * Where the app turned tus off: the course's form post of one file, with
 * progress and cancel but no pause (nothing to resume from).
 */
export class FormTransfer implements Transfer {
  readonly resumable = false;
  private xhr: XMLHttpRequest | undefined;
  private settle: { resolve(o: Outcome): void; reject(e: Error): void } | undefined;

  constructor(private readonly file: File, private readonly name: string, private readonly cfg: PageConfig,
    private readonly events: TransferEvents, private readonly headers: Record<string, string>) {}

  run(): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      this.settle = { resolve, reject };
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open('POST', `${this.cfg.prefix}/upload`);
      for (const [ k, v ] of Object.entries(this.headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = e => this.events.progress(e.loaded, e.lengthComputable ? e.total : this.file.size);
      xhr.onerror = () => reject(new Error('the server could not be reached'));
      xhr.onload = () => {
        if (xhr.status !== 200) return reject(new Error(errorText(xhr.status, xhr.responseText)));
        try {
          const { data } = JSON.parse(xhr.responseText);
          resolve({ kind: 'stored', fileId: data.FileId, sha1: data.FileSha1 });
        } catch {
          reject(new Error('the server answered something other than JSON'));
        }
      };
      const form = new FormData();
      form.append('file', this.file, this.name);
      xhr.send(form);
    });
  }

  pause(): void {
    // not offered: a form post cannot go on from where it stopped
  }

  async cancel(): Promise<void> {
    this.xhr?.abort();
    this.settle?.resolve({ kind: 'cancelled' });
  }
}
