/**
 * The upload page (GET <prefix>/upload), bundled by scripts/build-page.js.
 * Without JavaScript the page is its plain form; this script turns it into
 * the drop zone, the upload rows, the unfinished uploads and the user's files.
 */
import { Api } from './api';
import { setUpAccount } from './account';
import { auth } from './auth';
import { readConfig } from './config';
import { byId } from './dom';
import { FileList } from './files';
import { Hasher } from './hasher';
import { setUpPicker } from './picker';
import { UnfinishedUploads } from './unfinished';
import { UploadQueue } from './upload-queue';

function start(): void {
  const cfg = readConfig();
  auth.takeFromUrl();
  const api = new Api(cfg);
  const files = new FileList(api);
  let unfinished: UnfinishedUploads | undefined;
  const queue = new UploadQueue(byId('upload-list'), cfg, api, new Hasher(cfg.hashWorker), {
    stored: () => files.refreshSoon(),
    changed: () => {
      byId('uploads').hidden = queue.items.length === 0;
      void unfinished?.refresh();
    },
  });
  if (cfg.tusEndpoint) unfinished = new UnfinishedUploads(new URL(cfg.tusEndpoint, location.href).href, queue);

  byId('upload-form').hidden = true;
  byId('picker').hidden = false;
  setUpPicker(list => queue.add(list));
  setUpAccount(api, cfg.signinUrl);

  byId('pause-all').addEventListener('click', () => queue.pauseAll());
  byId('resume-all').addEventListener('click', () => queue.resumeAll());
  byId('cancel-all').addEventListener('click', () => {
    if (window.confirm('Cancel every upload that has not finished?')) void queue.cancelAll();
  });
  byId('clear-done').addEventListener('click', () => queue.clearFinished());
  // leaving stops the uploads in flight (they can be resumed, but say so)
  window.addEventListener('beforeunload', e => {
    if (!queue.busy()) return;
    e.preventDefault();
    e.returnValue = '';
  });
  auth.onChange(() => {
    void files.refresh();
    void unfinished?.refresh();
  });

  document.documentElement.classList.add('enhanced');
  void files.refresh();
  void unfinished?.refresh();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
