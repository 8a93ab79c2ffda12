import * as tus from 'tus-js-client';
import { auth } from './auth';
import { announce, byId, h } from './dom';
import { formatBytes } from './format';
import { fingerprint, FINGERPRINT_PREFIX } from './transfer';
import type { UploadQueue } from './upload-queue';

/**
 * Uploads this browser started and did not finish (tus-js-client keeps their
 * URLs in localStorage): after a reload, a closed tab or a server restart
 * they are listed with what the server holds of them. Resume asks for the
 * file again (a page cannot keep it across a reload) and goes on from the
 * server's offset when the picked file has the same fingerprint.
 */
export class UnfinishedUploads {
  private readonly section = byId('unfinished');
  private readonly list = byId('unfinished-list');
  private readonly input = byId<HTMLInputElement>('resume-input');
  private resuming: tus.PreviousUpload | undefined;
  private readonly notes = new Map<string, string>();
  private refreshing: Promise<void> | undefined;
  private again = false;

  constructor(private readonly endpoint: string, private readonly queue: UploadQueue) {
    this.input.addEventListener('change', () => void this.picked());
  }

  /** redraws the list (one redraw at a time; calls meanwhile make one more) */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = this.draw().finally(() => {
      this.refreshing = undefined;
      if (this.again) {
        this.again = false;
        void this.refresh();
      }
    });
    return this.refreshing;
  }

  private async entries(): Promise<tus.PreviousUpload[]> {
    const active = this.queue.urls();
    const mine = `tus::${FINGERPRINT_PREFIX}${auth.tag()}|`;
    const all = await tus.defaultOptions.urlStorage.findAllUploads();
    return all.filter(e => e.urlStorageKey.startsWith(mine) && e.uploadUrl && !active.has(e.uploadUrl))
      .sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime));
  }

  private async draw(): Promise<void> {
    const entries = await this.entries();
    const rows = entries.map(e => this.row(e));
    this.list.replaceChildren(...rows.map(r => r.el));
    this.section.hidden = rows.length === 0;
    // what the server holds of each; an upload it no longer knows (expired, finished, another user's) is forgotten
    await Promise.all(rows.map(r => r.offset()));
  }

  private row(entry: tus.PreviousUpload) {
    const name = entry.metadata?.filename ?? 'file';
    const size = entry.size ?? 0;
    const status = h('span', { className: 'row-status' }, this.notes.get(entry.urlStorageKey) ?? `${formatBytes(size)}, started ${new Date(entry.creationTime).toLocaleString()}`);
    const bar = h('progress', { max: 1, value: 0, 'aria-label': `Uploaded part of ${name}` });
    const el = h('li', { className: 'row unfinished', 'data-name': name },
      h('div', { className: 'row-head' },
        h('span', { className: 'row-name', title: name }, name),
        h('span', { className: 'row-size' }, formatBytes(size))),
      bar,
      h('div', { className: 'row-foot' }, status,
        h('span', { className: 'row-actions' },
          h('button', { type: 'button', 'aria-label': `Resume ${name}`, onclick: () => this.pick(entry) }, 'Resume'),
          h('button', { type: 'button', 'aria-label': `Discard ${name}`, onclick: () => void this.discard(entry) }, 'Discard'))));
    const offset = async () => {
      try {
        const res = await fetch(entry.uploadUrl!, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', ...auth.headers() } });
        if (res.status === 404 || res.status === 410 || res.status === 403) {
          await tus.defaultOptions.urlStorage.removeUpload(entry.urlStorageKey);
          el.remove();
          this.section.hidden = this.list.childElementCount === 0;
          return;
        }
        const at = Number(res.headers.get('Upload-Offset'));
        if (res.ok && Number.isFinite(at) && size) {
          bar.value = at / size;
          el.dataset.offset = String(at);
          if (!this.notes.has(entry.urlStorageKey)) status.textContent = `${formatBytes(at)} of ${formatBytes(size)} uploaded`;
        }
      } catch {
        // the server is away: the entry stays, Resume will tell
      }
    };
    return { el, offset };
  }

  private pick(entry: tus.PreviousUpload): void {
    this.resuming = entry;
    this.input.value = '';
    this.input.click();
  }

  /** the file the user picked to resume an entry: it must be the same one (same fingerprint) */
  private async picked(): Promise<void> {
    const entry = this.resuming;
    const file = this.input.files?.[0];
    this.resuming = undefined;
    if (!entry || !file) return;
    const name = entry.metadata?.filename ?? file.name;
    const print = await fingerprint(file, { endpoint: this.endpoint, metadata: { filename: name } });
    if (!entry.urlStorageKey.startsWith(`tus::${print}::`)) {
      const note = `${file.name} is not the file this upload was sending (its name, size, type or date differ): pick ${name} again`;
      this.notes.set(entry.urlStorageKey, note);
      announce(note);
      await this.refresh();
      return;
    }
    this.notes.delete(entry.urlStorageKey);
    this.queue.add([ { file, name, previous: entry } ]);
  }

  private async discard(entry: tus.PreviousUpload): Promise<void> {
    const name = entry.metadata?.filename ?? 'file';
    try {
      await tus.Upload.terminate(entry.uploadUrl!, { headers: auth.headers() });
    } catch {
      // gone already, or the server is away: it removes the upload when it expires
    }
    await tus.defaultOptions.urlStorage.removeUpload(entry.urlStorageKey);
    announce(`${name}: discarded`);
    await this.refresh();
  }
}
