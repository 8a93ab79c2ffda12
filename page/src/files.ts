import { Api, FileMeta } from './api';
import { announce, byId, h } from './dom';
import { formatBytes } from './format';

const PAGE = 50;

/** Puts text on the clipboard; where the Clipboard API is missing (plain http), the old way. */
async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h('textarea', { className: 'visually-hidden', readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

/**
 * The user's files (`/file/query`, newest first): download, rename, delete
 * and copy a download link, each in its row; an error shows the server's text.
 */
export class FileList {
  private readonly section = byId('files');
  private readonly list = byId('file-list');
  private readonly status = byId('files-status');
  private readonly more = byId<HTMLButtonElement>('files-more');
  private limit = PAGE;
  private timer: number | undefined;

  constructor(private readonly api: Api) {
    byId('files-refresh').addEventListener('click', () => void this.refresh());
    this.more.addEventListener('click', () => {
      this.limit = Math.min(1000, this.limit + PAGE);
      void this.refresh();
    });
  }

  /** one refresh for a burst of finished uploads */
  refreshSoon(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.refresh(), 300);
  }

  async refresh(): Promise<void> {
    this.section.hidden = false;
    let files: FileMeta[];
    try {
      files = await this.api.list(this.limit);
    } catch (err) {
      this.status.textContent = `Your files could not be listed: ${(err as Error).message}`;
      return;
    }
    this.status.textContent = files.length ? '' : 'No files yet.';
    this.more.hidden = files.length < this.limit || this.limit >= 1000;
    const focusedHash = (document.activeElement?.closest('.file') as HTMLElement | null)?.dataset.hash;
    this.list.replaceChildren(...files.map(f => this.row(f)));
    if (focusedHash) this.list.querySelector<HTMLElement>(`[data-hash="${focusedHash}"] button`)?.focus();
  }

  private row(f: FileMeta): HTMLLIElement {
    const n = f.FileName;
    const href = f.Location;
    const message = h('p', { className: 'row-error', role: 'alert' });
    const actions = h('span', { className: 'row-actions' });
    const nameEl = h('span', { className: 'row-name', title: n }, h('a', { href, download: n }, n));
    const el = h('li', { className: 'row file', 'data-hash': f.FileSha1, 'data-name': n },
      h('div', { className: 'row-head' }, nameEl, h('span', { className: 'row-size' }, formatBytes(f.FileSize))),
      h('div', { className: 'row-foot' }, h('span', { className: 'row-status' }, f.UploadAt), actions),
      message);
    const fail = (err: unknown) => {
      message.textContent = (err as Error).message;
    };
    const button = (text: string, label: string, fn: () => void) => h('button', { type: 'button', 'aria-label': `${label} ${n}`, onclick: fn }, text);

    const showActions = () => {
      actions.replaceChildren(
        h('a', { className: 'button', href, download: n, 'aria-label': `Download ${n}` }, 'Download'),
        button('Rename', 'Rename', rename),
        button('Copy link', 'Copy link for', () => void copy()),
        button('Delete', 'Delete', confirmDelete));
    };

    const copy = async () => {
      const url = new URL(href, location.href).href;
      if (await copyText(url)) {
        message.textContent = '';
        announce(`Link to ${n} copied`);
      } else {
        message.textContent = `Copy this link: ${url}`;
      }
    };

    const rename = () => {
      const input = h('input', { type: 'text', value: n, 'aria-label': `New name for ${n}`, required: true, maxlength: 300 });
      const form = h('form', { className: 'rename' }, input,
        h('button', { type: 'submit' }, 'Save'),
        h('button', { type: 'button', onclick: () => cancel() }, 'Cancel'));
      const cancel = () => {
        form.replaceWith(nameEl);
        showActions();
        actions.querySelector<HTMLButtonElement>('button')?.focus();
      };
      input.addEventListener('keydown', e => {
        if (e.key === 'Escape') cancel();
      });
      form.addEventListener('submit', async e => {
        e.preventDefault();
        const name = input.value.trim();
        if (!name || name === n) return cancel();
        try {
          await this.api.rename(f.FileSha1, name);
          announce(`${n} renamed to ${name}`);
          await this.refresh();
        } catch (err) {
          fail(err);
        }
      });
      nameEl.replaceWith(form);
      actions.replaceChildren();
      input.focus();
      input.select();
    };

    const confirmDelete = () => {
      const keep = button('Keep', 'Keep', () => {
        showActions();
        actions.querySelector<HTMLButtonElement>('[aria-label^="Delete"]')?.focus();
      });
      actions.replaceChildren(
        h('span', { className: 'confirm' }, `Delete ${n}?`),
        button('Delete', 'Confirm delete of', () => void remove()),
        keep);
      keep.focus();
    };

    const remove = async () => {
      try {
        await this.api.remove(f.FileSha1);
        announce(`${n} deleted`);
        await this.refresh();
        // its row is gone: keep the keyboard in the list rather than at the top of the page
        if (!document.activeElement || document.activeElement === document.body) byId('files-refresh').focus();
      } catch (err) {
        fail(err);
      }
    };

    showActions();
    return el;
  }
}
