import { announce, h } from './dom';
import { formatBytes, formatDuration, formatSpeed, SpeedMeter } from './format';
import type { HashJob } from './hasher';
import type { Transfer } from './transfer';
import type { PreviousUpload } from 'tus-js-client';

export type State = 'queued' | 'hashing' | 'checking' | 'uploading' | 'retrying' | 'paused' | 'stored' | 'instant' | 'failed' | 'cancelled';

/** states in which the row holds one of the page's slots */
export const BUSY: readonly State[] = [ 'hashing', 'checking', 'uploading', 'retrying' ];
/** states a row never leaves */
export const FINAL: readonly State[] = [ 'stored', 'instant', 'cancelled' ];

const LABEL: Record<State, string> = {
  queued: 'Waiting',
  hashing: 'Hashing',
  checking: 'Checking',
  uploading: 'Uploading',
  retrying: 'Reconnecting',
  paused: 'Paused',
  stored: 'Stored',
  instant: 'Instant',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export interface RowActions {
  pause(item: UploadItem): void;
  resume(item: UploadItem): void;
  cancel(item: UploadItem): void;
  dismiss(item: UploadItem): void;
}

/**
 * One file on its way: its state, what the hashing and the transfer have
 * done, and its row (name, size, a progress bar, what it is doing at what
 * speed and for how long still, and the buttons that fit its state).
 */
export class UploadItem {
  state: State = 'queued';
  /** sha1 of the file, when the page hashed it */
  sha1: string | undefined;
  /** 秒传 asked (or skipped): the next step is the transfer */
  checked = false;
  /** a pause or cancel came while a request of the row's was out */
  stop: 'pause' | 'cancel' | undefined;
  running = false;
  transfer: Transfer | undefined;
  hashJob: HashJob | undefined;
  fileId: string | undefined;
  /** why the file was not hashed (too large, no worker), shown while it uploads */
  hashNote = '';
  /** bytes the server acknowledged */
  accepted = 0;
  /** the upload this one goes on from, picked in the list of unfinished uploads */
  previous: PreviousUpload | undefined;

  private done = 0;
  private readonly meter = new SpeedMeter();
  private error = '';
  private retryAt = 0;
  private retryReason = '';
  private lastPaint = 0;

  readonly el: HTMLLIElement;
  private readonly statusEl: HTMLSpanElement;
  private readonly bar: HTMLProgressElement;
  private readonly actions: HTMLSpanElement;

  constructor(readonly file: File, readonly name: string, private readonly prefix: string, private readonly act: RowActions) {
    this.statusEl = h('span', { className: 'row-status' });
    this.bar = h('progress', { max: 1, value: 0, 'aria-label': `Upload of ${name}` });
    this.actions = h('span', { className: 'row-actions' });
    this.el = h('li', { className: 'row upload', 'data-name': name },
      h('div', { className: 'row-head' },
        h('span', { className: 'row-name', title: name }, name),
        h('span', { className: 'row-size' }, formatBytes(file.size))),
      this.bar,
      h('div', { className: 'row-foot' }, this.statusEl, this.actions));
    this.setState('queued');
  }

  get size(): number {
    return this.file.size;
  }

  setState(state: State, note?: string): void {
    const was = this.state;
    this.state = state;
    if (state === 'failed') this.error = note ?? 'unknown error';
    if (state !== was && (state === 'hashing' || state === 'uploading')) this.meter.reset();
    this.el.dataset.state = state;
    this.renderActions();
    this.paint(true);
    if (state !== was && [ 'stored', 'instant', 'failed', 'paused', 'cancelled' ].includes(state)) {
      announce(`${this.name}: ${this.statusText()}`);
    }
  }

  /** bytes hashed or sent so far, in the current phase */
  progress(done: number): void {
    this.done = done;
    this.meter.add(done);
    this.paint(false);
  }

  retrying(delayMs: number, reason: string): void {
    this.retryAt = performance.now() + delayMs;
    this.retryReason = reason;
    this.setState('retrying');
  }

  stored(fileId: string | undefined, sha1: string | undefined): void {
    this.fileId = fileId;
    if (sha1) this.sha1 = sha1;
    this.done = this.size;
    this.setState('stored');
  }

  /** the file's sha1, on the row for whoever wants to compare */
  setHash(sha1: string): void {
    this.sha1 = sha1;
    this.el.dataset.sha1 = sha1;
  }

  /** redraws the bar and the status line; progress at most every 200 ms */
  paint(force: boolean): void {
    const now = performance.now();
    if (!force && now - this.lastPaint < 200) return;
    this.lastPaint = now;
    const phaseDone = this.state === 'stored' || this.state === 'instant' ? this.size : this.done;
    this.bar.value = this.size ? Math.min(1, phaseDone / this.size) : FINAL.includes(this.state) ? 1 : 0;
    this.bar.setAttribute('aria-label', `${this.state === 'hashing' ? 'Hashing' : 'Upload of'} ${this.name}`);
    this.statusEl.textContent = this.statusText();
  }

  private statusText(): string {
    const label = LABEL[this.state];
    const of = `${formatBytes(this.done)} of ${formatBytes(this.size)}`;
    const speed = this.meter.speed();
    const rate = speed ? ` · ${formatSpeed(speed)} · ${formatDuration((this.size - this.done) / speed)} left` : '';
    switch (this.state) {
      case 'hashing':
        return `${label} · ${Math.floor((this.done / (this.size || 1)) * 100)}%${rate}`;
      case 'checking':
        return 'Asking the store whether it has this file';
      case 'uploading':
        return `${label} · ${of}${rate}${this.hashNote ? ` · ${this.hashNote}` : ''}`;
      case 'retrying': {
        const wait = Math.max(0, Math.ceil((this.retryAt - performance.now()) / 1000));
        return `${label}: ${this.retryReason}; ${wait ? `trying again in ${wait} s` : 'trying again'}`;
      }
      case 'paused':
        return this.transfer?.resumable && this.done ? `${label} at ${of}` : label;
      case 'stored':
        return this.sha1 ? `${label} · sha1 ${this.sha1.slice(0, 12)}…` : label;
      case 'instant':
        return 'Instant: the store already had this file';
      case 'failed':
        return `${label}: ${this.error}`;
      default:
        return label;
    }
  }

  private renderActions(): void {
    const n = this.name;
    const button = (text: string, label: string, fn: () => void) => h('button', { type: 'button', 'aria-label': `${label} ${n}`, onclick: fn }, text);
    const buttons: HTMLElement[] = [];
    const s = this.state;
    const canPause = s === 'queued' || s === 'hashing' || s === 'checking' || ((s === 'uploading' || s === 'retrying') && this.transfer?.resumable !== false);
    if (canPause) buttons.push(button('Pause', 'Pause', () => this.act.pause(this)));
    if (s === 'paused') buttons.push(button('Resume', 'Resume', () => this.act.resume(this)));
    if (s === 'failed') buttons.push(button('Retry', 'Retry', () => this.act.resume(this)));
    if (s === 'stored' || s === 'instant') {
      if (this.fileId) {
        buttons.push(h('a', { className: 'button', href: `${this.prefix}/download?fileid=${encodeURIComponent(this.fileId)}`, download: n, 'aria-label': `Download ${n}` }, 'Download'));
      }
      buttons.push(button('Clear', 'Clear', () => this.act.dismiss(this)));
    } else if (s === 'cancelled') {
      buttons.push(button('Clear', 'Clear', () => this.act.dismiss(this)));
    } else {
      buttons.push(button('Cancel', 'Cancel', () => this.act.cancel(this)));
    }
    // keep the keyboard where it was: a replaced button would drop focus to the page
    const focused = this.actions.contains(document.activeElement) ? (document.activeElement as HTMLElement).textContent : undefined;
    this.actions.replaceChildren(...buttons);
    if (focused !== undefined) {
      const next = buttons.find(b => b.textContent === focused) ?? buttons.find(b => b.tagName === 'BUTTON');
      next?.focus();
    }
  }
}
