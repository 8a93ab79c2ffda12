import type { PreviousUpload } from 'tus-js-client';
import type { Api } from './api';
import type { PageConfig } from './config';
import { announce } from './dom';
import { formatBytes } from './format';
import { HashCancelled, type Hasher } from './hasher';
import { FormTransfer, type Outcome, type Transfer, type TransferEvents, TusTransfer } from './transfer';
import { BUSY, FINAL, UploadItem } from './upload-row';

export interface NewUpload {
  file: File;
  /** the name to store: the file's, with its folder when a folder was picked or dropped */
  name: string;
  /** an unfinished upload to go on from */
  previous?: PreviousUpload;
}

export interface QueueHooks {
  /** a file was stored (by upload or 秒传) */
  stored(): void;
  /** rows came, went or changed state */
  changed(): void;
}

/**
 * The uploads of the page: at most `parallel` rows hash or send at a time,
 * the rest wait. A row hashes its file (in the worker), asks the store
 * whether it has it already (秒传), and sends it over tus in chunks of
 * `chunkSize`, resuming from the server's offset after a pause, a failure
 * or a reload.
 */
export class UploadQueue {
  readonly items: UploadItem[] = [];

  constructor(private readonly list: HTMLElement, private readonly cfg: PageConfig, private readonly api: Api,
    private readonly hasher: Hasher, private readonly hooks: QueueHooks) {
    // speed, time left and retry countdowns move on even when no event comes
    window.setInterval(() => this.items.forEach(i => BUSY.includes(i.state) && i.paint(true)), 1000);
  }

  add(uploads: NewUpload[]): void {
    for (const u of uploads) {
      // the same file twice would send the same upload twice at once
      const twin = this.items.find(i => !FINAL.includes(i.state) && i.name === u.name && i.file.size === u.file.size
        && i.file.lastModified === u.file.lastModified);
      if (twin) {
        announce(`${u.name} is in the list already`);
        twin.el.scrollIntoView({ block: 'nearest' });
        continue;
      }
      const item = new UploadItem(u.file, u.name, this.cfg.prefix, {
        pause: i => this.pause(i),
        resume: i => this.resume(i),
        cancel: i => void this.cancel(i),
        dismiss: i => this.dismiss(i),
      });
      item.previous = u.previous;
      this.items.push(item);
      this.list.append(item.el);
    }
    this.pump();
    this.hooks.changed();
  }

  /** upload URLs of the rows that are not finished (the list of unfinished uploads leaves them out) */
  urls(): Set<string> {
    const urls = new Set<string>();
    for (const i of this.items) {
      const url = (i.transfer as TusTransfer | undefined)?.url;
      if (url && !FINAL.includes(i.state)) urls.add(url);
    }
    return urls;
  }

  /** whether leaving the page would stop something */
  busy(): boolean {
    return this.items.some(i => i.running || i.state === 'queued');
  }

  pauseAll(): void {
    this.items.forEach(i => this.pause(i));
  }

  resumeAll(): void {
    this.items.filter(i => i.state === 'paused').forEach(i => this.resume(i));
  }

  async cancelAll(): Promise<void> {
    await Promise.all(this.items.filter(i => !FINAL.includes(i.state)).map(i => this.cancel(i)));
  }

  clearFinished(): void {
    this.items.filter(i => FINAL.includes(i.state)).forEach(i => this.dismiss(i));
  }

  pause(item: UploadItem): void {
    const s = item.state;
    if (s === 'queued' || s === 'hashing' || s === 'checking') {
      item.hashJob?.cancel();
      if (item.running) item.stop = 'pause';
      item.setState('paused');
    } else if ((s === 'uploading' || s === 'retrying') && item.transfer?.resumable) {
      // what the server holds: the chunk in flight is dropped, and sent again on resume
      item.progress(item.accepted);
      item.setState('paused');
      item.transfer.pause();
    }
    this.hooks.changed();
  }

  resume(item: UploadItem): void {
    if (item.state !== 'paused' && item.state !== 'failed') return;
    item.stop = undefined;
    item.setState('queued');
    this.pump();
  }

  async cancel(item: UploadItem): Promise<void> {
    if (FINAL.includes(item.state)) return;
    item.hashJob?.cancel();
    if (item.running) item.stop = 'cancel';
    item.setState('cancelled');
    await item.transfer?.cancel();
    this.hooks.changed();
  }

  dismiss(item: UploadItem): void {
    if (!FINAL.includes(item.state)) return;
    this.items.splice(this.items.indexOf(item), 1);
    item.el.remove();
    this.hooks.changed();
  }

  private pump(): void {
    let slots = this.cfg.parallel - this.items.filter(i => i.running).length;
    for (const item of this.items) {
      if (slots <= 0) break;
      if (item.state !== 'queued' || item.running) continue;
      slots--;
      void this.run(item);
    }
  }

  private async run(item: UploadItem): Promise<void> {
    item.running = true;
    try {
      const outcome = await this.process(item);
      if (outcome.kind === 'instant') {
        item.setState('instant');
        this.hooks.stored();
      } else if (outcome.kind === 'stored') {
        if (item.sha1 && outcome.sha1 && outcome.sha1 !== item.sha1) {
          item.setState('failed', `the store computed sha1 ${outcome.sha1}, the file read here ${item.sha1}: was it changed while it uploaded?`);
        } else {
          item.stored(outcome.fileId, outcome.sha1);
          if (outcome.sha1) item.setHash(outcome.sha1);
        }
        this.hooks.stored();
      }
      // paused or cancelled: the row says so already
    } catch (err) {
      if (!(err instanceof HashCancelled) && !FINAL.includes(item.state) && item.state !== 'paused') {
        item.setState('failed', (err as Error).message);
      }
    } finally {
      item.running = false;
      item.stop = undefined;
      this.pump();
      this.hooks.changed();
    }
  }

  private stopped(item: UploadItem): Outcome | undefined {
    if (item.stop === 'pause' || item.state === 'paused') return { kind: 'paused' };
    if (item.stop === 'cancel' || item.state === 'cancelled') return { kind: 'cancelled' };
    return undefined;
  }

  private async process(item: UploadItem): Promise<Outcome | { kind: 'instant' }> {
    const transfer = item.transfer ??= this.transferFor(item);
    if (transfer instanceof TusTransfer && !item.checked) {
      // the same file, picked again: go on with its unfinished upload instead of hashing and starting over
      const previous = item.previous ?? await transfer.findPrevious();
      if (previous) {
        transfer.resumeFrom(previous);
        item.checked = true;
        item.hashNote = 'resumed';
      }
    }
    if (!item.checked) {
      const instant = await this.fastUpload(item);
      const stop = this.stopped(item);
      if (stop) return stop;
      if (instant) return { kind: 'instant' };
      item.checked = true;
    }
    item.setState('uploading');
    item.progress(0);
    return transfer.run();
  }

  /** hashes the file and asks the store for it (秒传); true when the store linked it */
  private async fastUpload(item: UploadItem): Promise<boolean> {
    if (item.size > this.cfg.hashMaxSize) {
      item.hashNote = `not hashed (over ${formatBytes(this.cfg.hashMaxSize)})`;
      return false;
    }
    if (!this.hasher.available) {
      item.hashNote = 'not hashed (no Web Worker)';
      return false;
    }
    item.setState('hashing');
    item.progress(0);
    item.hashJob = this.hasher.hash(item.file, done => item.progress(done));
    try {
      item.setHash(await item.hashJob.promise);
    } catch (err) {
      if (err instanceof HashCancelled) throw err;
      item.hashNote = `not hashed (${(err as Error).message})`;
      return false;
    } finally {
      item.hashJob = undefined;
    }
    if (this.stopped(item)) return false;
    item.setState('checking');
    const meta = await this.api.fastUpload(item.sha1!, item.name, item.size);
    if (!meta) return false;
    item.fileId = meta.FileId;
    return true;
  }

  private transferFor(item: UploadItem): Transfer {
    const events: TransferEvents = {
      progress: sent => {
        if (item.state === 'retrying') item.setState('uploading');
        item.progress(sent);
      },
      accepted: bytes => (item.accepted = bytes),
      retrying: (delayMs, reason) => item.retrying(delayMs, reason),
      reconnected: () => item.state === 'retrying' && item.setState('uploading'),
    };
    return this.cfg.tusEndpoint
      ? new TusTransfer(item.file, item.name, this.cfg, events)
      : new FormTransfer(item.file, item.name, this.cfg, events, this.api.headers('POST'));
  }
}
