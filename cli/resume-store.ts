import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultOptions, PreviousUpload, UrlStorage, UploadOptions } from 'tus-js-client';
import { localError } from './errors';

// tus-js-client ships it for Node but leaves it out of its typings
const { FileUrlStorage } = require('tus-js-client') as { FileUrlStorage: new (file: string) => UrlStorage };

/** $XDG_CONFIG_HOME/sonofs, or ~/.config/sonofs. */
export function configDir(): string {
  const xdg = process.env.XDG_CONFIG_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config'), 'sonofs');
}

/** Where unfinished uploads are remembered: one JSON file of tus-js-client's, locked while written. */
export function uploadsFile(): string {
  return path.join(configDir(), 'uploads.json');
}

/**
 * tus-js-client's file storage, with its operations run one at a time in
 * this process (parallel uploads would otherwise fight over its lock file),
 * awaitable before the process exits (tus-js-client forgets a finished
 * upload without waiting), and a file that an earlier run left torn (killed
 * while writing it) moved aside instead of failing every upload.
 */
export class ResumeStorage implements UrlStorage {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly inner: UrlStorage;

  constructor(private readonly file: string, private readonly warn: (message: string) => void) {
    this.inner = new FileUrlStorage(file);
  }

  private queue<T>(op: (s: UrlStorage) => Promise<T>): Promise<T> {
    const run = async () => {
      try {
        return await op(this.inner);
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err;
        const aside = `${this.file}.broken-${Date.now()}`;
        fs.renameSync(this.file, aside);
        this.warn(`${this.file} was torn (moved to ${aside}); unfinished uploads start over`);
        return op(this.inner);
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  findAllUploads(): Promise<PreviousUpload[]> {
    return this.queue(s => s.findAllUploads());
  }

  findUploadsByFingerprint(fingerprint: string): Promise<PreviousUpload[]> {
    return this.queue(s => s.findUploadsByFingerprint(fingerprint));
  }

  removeUpload(key: string): Promise<void> {
    return this.queue(s => s.removeUpload(key));
  }

  addUpload(fingerprint: string, upload: PreviousUpload): Promise<string> {
    return this.queue(s => s.addUpload(fingerprint, upload));
  }

  /** Resolves once every operation asked for so far is done. */
  settled(): Promise<void> {
    return this.chain.then(() => undefined);
  }
}

/**
 * What lets a run resume an upload an earlier run started: the upload URLs
 * by fingerprint (tus-js-client's: absolute path, size, mtime and endpoint;
 * plus the token, so two users of one machine never resume each other's
 * upload, which the server would refuse anyway).
 */
export function resumeOptions(token: string | undefined, warn: (message: string) => void): Pick<UploadOptions, 'fingerprint'> & { urlStorage: ResumeStorage } {
  const dir = configDir();
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw localError(`cannot create ${dir} (where unfinished uploads are remembered)`, err);
  }
  const who = token ? createHash('sha256').update(token).digest('hex').slice(0, 16) : 'no-token';
  return {
    urlStorage: new ResumeStorage(uploadsFile(), warn),
    fingerprint: async (file, options) => {
      const base = await defaultOptions.fingerprint(file, options);
      return base ? `${base}-${who}` : base;
    },
  };
}
