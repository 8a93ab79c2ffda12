import { byId } from './dom';
import type { NewUpload } from './upload-queue';

/** The name a picked or dropped file is stored under: with its folder, when it came in one. */
function nameOf(file: File, path?: string): string {
  const rel = path ?? (file as File & { webkitRelativePath?: string }).webkitRelativePath;
  return (rel || file.name).replace(/^\/+/, '');
}

/** every file under a dropped folder (readEntries hands them out a batch at a time) */
async function filesIn(entry: FileSystemEntry): Promise<NewUpload[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    return [ { file, name: nameOf(file, entry.fullPath) } ];
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: NewUpload[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return out;
    for (const child of batch) out.push(...await filesIn(child));
  }
}

async function dropped(data: DataTransfer): Promise<NewUpload[]> {
  const entries = Array.from(data.items ?? [])
    .filter(i => i.kind === 'file')
    .map(i => (typeof i.webkitGetAsEntry === 'function' ? i.webkitGetAsEntry() : null));
  // folders only come as entries; without them (or for files made by script), the plain file list
  if (entries.length && entries.every(e => e)) {
    const lists = await Promise.all(entries.map(e => filesIn(e!)));
    return lists.flat();
  }
  return Array.from(data.files).map(file => ({ file, name: nameOf(file) }));
}

/**
 * Ways to add files: the form's file input (now for many files), a folder
 * input where the browser has one (webkitdirectory), and dropping files or
 * folders anywhere on the page.
 */
export function setUpPicker(add: (uploads: NewUpload[]) => void): void {
  const files = byId<HTMLInputElement>('file-input');
  const folder = byId<HTMLInputElement>('folder-input');
  const zone = byId('picker');
  files.multiple = true;
  files.required = false;
  byId('pick-files').addEventListener('click', () => files.click());
  if ('webkitdirectory' in folder) {
    folder.webkitdirectory = true;
    const button = byId('pick-folder');
    button.hidden = false;
    button.addEventListener('click', () => folder.click());
  }
  for (const input of [ files, folder ]) {
    input.addEventListener('change', () => {
      const picked = Array.from(input.files ?? []).map(file => ({ file, name: nameOf(file) }));
      input.value = '';
      if (picked.length) add(picked);
    });
  }
  // the form itself, should anything submit it: the picked files go the resumable way
  byId<HTMLFormElement>('upload-form').addEventListener('submit', e => e.preventDefault());

  let depth = 0;
  document.addEventListener('dragenter', e => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    depth++;
    zone.classList.add('dragging');
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove('dragging');
  });
  document.addEventListener('dragover', e => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('drop', e => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dragging');
    void dropped(e.dataTransfer).then(list => list.length && add(list));
  });
}
