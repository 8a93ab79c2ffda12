import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { lookup as mimeLookup } from 'mime-types';
import { DetailedError, Upload, UploadOptions } from 'tus-js-client';
import { CliConfig, authHeaders, urlOf } from '../config';
import { CliError, EXIT, exitForStatus, localError, networkError, usage } from '../errors';
import { bytes, rate, seconds } from '../format';
import { Sha1Counter, hashFile } from '../hash';
import { httpError, send, sendJson } from '../http';
import { onInterrupt } from '../interrupt';
import { Bar, Progress } from '../progress';
import { resumeOptions } from '../resume-store';

export interface PutOptions {
  parallel: number;
  /** the stored name, for standard input or a single file */
  name?: string;
  /** ask the store for the content first (秒传) */
  instant: boolean;
  /** bytes per PATCH (default: the whole rest of the file in one) */
  chunkSize?: number;
  json?: boolean;
}

export interface PutResult {
  /** the path given, `-` for standard input */
  file: string;
  name: string;
  fileId: string;
  sha1: string;
  size: number;
  /** linked to content the store already had: nothing sent */
  instant: boolean;
  /** the offset an earlier run had reached (0: a new upload) */
  resumedFrom: number;
  /** bytes sent in this run */
  sent: number;
  /** how long sending took (秒传: the hash and the question) */
  ms: number;
}

/** A creation-with-upload POST carries files up to this size (the server stores them in one go). */
const ONE_REQUEST_MAX = 1024 * 1024;
/** Bytes of standard input per PATCH: what tus-js-client holds in memory to resend after a dropped connection. */
const STDIN_CHUNK = 8 * 1024 * 1024;
/** Waits before tus-js-client tries again after a dropped connection or a 5xx (then the upload fails). */
const RETRY_DELAYS = [ 0, 1000, 3000, 5000, 10000 ];

interface Source {
  file: string;
  name: string;
  /** undefined for standard input */
  size?: number;
}

/** Every path must be a readable regular file before anything is sent. */
function sources(files: string[], opts: PutOptions): Source[] {
  if (files.filter(f => f === '-').length > 1) throw usage('standard input (-) can be given once');
  if (opts.name !== undefined && files.length > 1) throw usage('--name names one file; give one FILE or -');
  const out: Source[] = [];
  for (const file of files) {
    if (file === '-') {
      out.push({ file, name: opts.name ?? 'stdin' });
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      throw localError(file, err);
    }
    if (!st.isFile()) throw new CliError(EXIT.GENERAL, `${file}: not a regular file`);
    out.push({ file, name: opts.name ?? path.basename(file), size: st.size });
  }
  return out;
}

/** tus-js-client's failure as one line with the right exit code. */
function tusError(cfg: CliConfig, name: string, err: Error): CliError {
  const res = (err as DetailedError).originalResponse;
  if (!res) {
    const cause = (err as DetailedError).causingError;
    return cause ? networkError(`${name}: upload`, cfg.base.origin, cause) : new CliError(EXIT.GENERAL, `${name}: ${err.message}`, err);
  }
  const status = res.getStatus();
  let msg = `HTTP ${status}`;
  let code = '';
  try {
    const body = JSON.parse(res.getBody());
    if (typeof body.msg === 'string') msg = body.msg;
    if (typeof body.code === 'string') code = ` ${body.code}`;
  } catch {}
  if (status === 401 || status === 403) {
    const hint = cfg.token ? 'the server refused the token' : 'the server wants a token: pass --token or set SONOFS_TOKEN';
    return new CliError(EXIT.AUTH, `${name}: ${hint} (${status}${code})`, err);
  }
  return new CliError(exitForStatus(status), `${name}: upload failed: ${msg} (${status}${code})`, err);
}

/** 秒传: links content the store already has under `name`; undefined when it has not. */
async function fastUpload(cfg: CliConfig, name: string, sha1: string, size: number): Promise<string | undefined> {
  const res = await send(cfg, 'POST', `${cfg.prefix}/fastupload`, `${name}: 秒传`, { form: { filehash: sha1, filename: name, filesize: size } });
  // a node without the course's routes (`routes: false`): upload over tus
  if (res.status === 404) return undefined;
  if (!res.ok) throw await httpError(`${name}: 秒传`, res, cfg);
  const body = await res.json() as { code: number; data?: { FileId?: string } };
  return body.code === 0 ? body.data?.FileId : undefined;
}

class Uploader {
  readonly resume: ReturnType<typeof resumeOptions>;

  constructor(private readonly cfg: CliConfig, private readonly opts: PutOptions, warn: (message: string) => void) {
    this.resume = resumeOptions(cfg.token, warn);
  }

  async put(src: Source, bar: Bar): Promise<PutResult> {
    const started = Date.now();
    if (src.size === undefined) return this.stdin(src, bar);
    const hash = createHash('sha1');
    try {
      await hashFile(src.file, hash, n => bar.update(n, 'sha1'));
    } catch (err) {
      throw localError(src.file, err);
    }
    const sha1 = hash.digest('hex');
    if (this.opts.instant) {
      const fileId = await fastUpload(this.cfg, src.name, sha1, src.size);
      if (fileId) {
        bar.update(src.size, 'instant');
        return { file: src.file, name: src.name, fileId, sha1, size: src.size, instant: true, resumedFrom: 0, sent: 0, ms: Date.now() - started };
      }
    }
    const sending = Date.now();
    // tus-js-client cannot slice an empty file stream; an empty buffer is the same upload
    const tus = await this.tus(src, bar, src.size ? fs.createReadStream(src.file) : Buffer.alloc(0), {
      uploadSize: src.size,
      ...(this.opts.chunkSize ? { chunkSize: this.opts.chunkSize } : {}),
      uploadDataDuringCreation: src.size <= ONE_REQUEST_MAX,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      ...this.resume,
    });
    return { ...await this.stored(src, sha1, tus.fileId, tus.hash), size: src.size, instant: false, resumedFrom: tus.resumedFrom, sent: src.size - tus.resumedFrom, ms: Date.now() - sending };
  }

  /** Standard input: streamed in chunks with a deferred length, hashed on the way; never held whole. */
  private async stdin(src: Source, bar: Bar): Promise<PutResult> {
    const started = Date.now();
    const counter = new Sha1Counter();
    process.stdin.on('error', err => counter.destroy(err));
    process.stdin.pipe(counter);
    const tus = await this.tus(src, bar, counter, { uploadLengthDeferred: true, chunkSize: this.opts.chunkSize ?? STDIN_CHUNK, storeFingerprintForResuming: false });
    const sha1 = counter.hash.digest('hex');
    return { ...await this.stored(src, sha1, tus.fileId, tus.hash), size: counter.bytes, instant: false, resumedFrom: 0, sent: counter.bytes, ms: Date.now() - started };
  }

  /** The stored file's id, once its sha1 is checked against the one computed here. */
  private async stored(src: Source, sha1: string, fileId: string | undefined, serverHash: string | undefined) {
    if (serverHash && serverHash !== sha1) {
      throw new CliError(EXIT.INTEGRITY, `${src.name}: the server stored sha1 ${serverHash}, but the file's is ${sha1} (did it change during the upload?)`);
    }
    if (!fileId) {
      const meta = await sendJson<{ FileId: string }>(this.cfg, 'GET', `${this.cfg.prefix}/meta`, `${src.name}: meta`, { params: { filehash: sha1 } });
      fileId = meta.FileId;
    }
    return { file: src.file, name: src.name, fileId, sha1 };
  }

  private tus(src: Source, bar: Bar, input: unknown, extra: UploadOptions) {
    const { cfg } = this;
    return new Promise<{ fileId?: string; hash?: string; resumedFrom: number }>((resolve, reject) => {
      let resumedFrom: number | undefined;
      const mime = mimeLookup(src.name);
      const upload = new Upload(input as Buffer, {
        endpoint: urlOf(cfg, `${cfg.tusPath}/`).href,
        headers: authHeaders(cfg),
        metadata: { filename: src.name, ...(mime ? { filetype: mime } : {}) },
        retryDelays: RETRY_DELAYS,
        // 4xx are final (a 409 offset mismatch or a 423 lock: ask again), anything else is tried again
        onShouldRetry: err => {
          const status = err.originalResponse?.getStatus() ?? 0;
          return !(status >= 400 && status < 500) || status === 409 || status === 423;
        },
        onBeforeRequest: req => {
          if (cfg.verbose) process.stderr.write(`> ${req.getMethod()} ${req.getURL()}${req.getHeader('Upload-Offset') ? ` at ${req.getHeader('Upload-Offset')}` : ''}\n`);
          if (resumedFrom === undefined && req.getMethod() === 'PATCH') resumedFrom = Number(req.getHeader('Upload-Offset')) || 0;
        },
        // a resumed upload starts with a HEAD (which may find it complete already: then no PATCH follows)
        onAfterResponse: (req, res) => {
          if (resumedFrom === undefined && req.getMethod() === 'HEAD' && res.getStatus() === 200) resumedFrom = Number(res.getHeader('Upload-Offset')) || 0;
        },
        onProgress: sent => bar.update(sent, 'upload'),
        onSuccess: ({ lastResponse }) => {
          off();
          resolve({
            fileId: lastResponse.getHeader('Sonofs-File-Id') || undefined,
            hash: lastResponse.getHeader('Sonofs-File-Hash') || undefined,
            resumedFrom: resumedFrom ?? 0,
          });
        },
        onError: err => {
          off();
          reject(tusError(cfg, src.name, err));
        },
        ...extra,
      });
      const off = onInterrupt(() => upload.abort(false));
      upload.findPreviousUploads()
        .then(previous => {
          // the most recent run's upload of this file (tus-js-client keeps them in the order they were made)
          if (previous.length) upload.resumeFromPreviousUpload(previous[previous.length - 1]);
        }, err => {
          if (cfg.verbose) process.stderr.write(`sonofs: ${src.name}: cannot read the unfinished uploads (${(err as Error).message}); starting over\n`);
        })
        .finally(() => upload.start());
    });
  }
}

function resultLine(r: PutResult): string {
  const how = r.instant ? 'instant'
    : `${rate(r.sent, r.ms)} (${bytes(r.sent)} in ${seconds(r.ms)}${r.resumedFrom ? `, resumed at ${bytes(r.resumedFrom)}` : ''})`;
  return `${r.name}  ${r.fileId}  ${r.sha1}  ${how}`;
}

/** `sonofs put FILE...`: uploads files (or standard input), `parallel` at a time. */
export async function put(cfg: CliConfig, files: string[], opts: PutOptions): Promise<void> {
  const srcs = sources(files, opts);
  const known = srcs.every(s => s.size !== undefined);
  const progress = new Progress(cfg.progress, known ? srcs.reduce((n, s) => n + s.size!, 0) : undefined, srcs.length);
  const uploader = new Uploader(cfg, opts, message => progress.line(`sonofs: ${message}`, true));
  // the resume file is written out before the process exits
  onInterrupt(async () => {
    progress.stop();
    await uploader.resume.urlStorage.settled();
  }, 'interrupted: run the same command again to resume the unfinished uploads');
  const failures: CliError[] = [];
  let next = 0;
  const worker = async () => {
    while (next < srcs.length) {
      const src = srcs[next++];
      const bar = progress.add(src.name, src.size);
      try {
        const r = await uploader.put(src, bar);
        progress.line(opts.json ? JSON.stringify(r) : resultLine(r));
      } catch (err) {
        const e = err instanceof CliError ? err : new CliError(EXIT.GENERAL, `${src.name}: ${(err as Error).message}`, err);
        failures.push(e);
        // with several files, each failure is told as it happens and the others go on
        if (srcs.length > 1) progress.line(`sonofs: ${e.message}`, true);
      } finally {
        bar.finish();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.parallel, srcs.length) }, worker));
  await uploader.resume.urlStorage.settled();
  progress.stop();
  if (!failures.length) return;
  if (srcs.length === 1) throw failures[0];
  throw new CliError(failures[0].exit, `${failures.length} of ${srcs.length} files were not stored`);
}
