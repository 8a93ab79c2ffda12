import type { PageSettings } from './options';

/** What the page's script reads from the HTML (page/src/config.ts has the same shape). */
export interface PageConfig extends PageSettings {
  /** prefix of the built-in routes (`/file`) */
  prefix: string;
  /** the tus endpoint's path (`/files/`), or null when tus is off (the page then posts forms) */
  tusEndpoint: string | null;
  /** URL of the hashing worker's script */
  hashWorker: string;
  maxFileSize: number;
  /** Egg's CSRF token and the header that carries it, when the app checks it */
  csrf: { header: string; token: string } | null;
}

export interface PageAssetUrls {
  script: string;
  style: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (s: string) => s.replace(/[&<>"']/g, c => ESCAPES[c]);

/** JSON inside a <script> element: `<` never closes it. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

const HEAD = `<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Upload files · sonofs</title>`;

/**
 * The form every page starts with: one file, posted as multipart, answered
 * with a redirect to `/upload/suc` as in the course. It works without
 * JavaScript; the page's script takes its file input over. With
 * `sonofs.csrf` its action carries Egg's token (the body is not parsed
 * before the check).
 */
function plainForm(prefix: string, csrf: { queryName: string; token: string } | undefined): string {
  const action = `${prefix}/upload` + (csrf ? `?${encodeURIComponent(csrf.queryName)}=${encodeURIComponent(csrf.token)}` : '');
  return `<form id="upload-form" class="plain-form" action="${escape(action)}" method="post" enctype="multipart/form-data">
  <label for="file-input">File</label>
  <input id="file-input" type="file" name="file" required>
  <button type="submit">Upload</button>
</form>`;
}

/** `sonofs.page: false`, or a build without the page's scripts: the course's form, nothing more. */
export function plainUploadPage(prefix: string, csrf?: { queryName: string; token: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
${HEAD}
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }
  form { display: flex; gap: .75rem; align-items: center; flex-wrap: wrap; }
  button { padding: .4rem 1.2rem; }
</style>
</head>
<body>
<h1>Upload a file</h1>
${plainForm(prefix, csrf)}
<p><a href="${escape(prefix)}/query?limit=20">Your latest files (JSON)</a></p>
</body>
</html>
`;
}

/**
 * The upload page: the plain form for browsers without JavaScript, and the
 * skeleton the script (page/src/main.ts) fills in: drop zone, upload rows,
 * unfinished uploads, the user's files. Sections the script needs stay
 * hidden until it runs.
 */
export function uploadPage(config: PageConfig, assets: PageAssetUrls, csrf?: { queryName: string; token: string }): string {
  const p = escape(config.prefix);
  return `<!doctype html>
<html lang="en">
<head>
${HEAD}
<link rel="stylesheet" href="${escape(assets.style)}">
<script type="application/json" id="sonofs-page-config">${scriptJson(config)}</script>
<script defer src="${escape(assets.script)}"></script>
</head>
<body>
<header class="top">
  <h1>Upload files</h1>
  <div id="account" class="account" hidden></div>
</header>
<main>
${plainForm(config.prefix, csrf)}
<noscript><p>Without JavaScript this form sends one file at a time and cannot resume.
<a href="${p}/query?limit=20">Your latest files (JSON)</a></p></noscript>

<section id="picker" class="picker" aria-labelledby="picker-title" hidden>
  <h2 id="picker-title" class="visually-hidden">Add files</h2>
  <p class="picker-text">Drop files or folders here, or</p>
  <div class="picker-buttons">
    <button type="button" id="pick-files" class="primary">Choose files</button>
    <button type="button" id="pick-folder" hidden>Choose a folder</button>
  </div>
  <input type="file" id="folder-input" class="visually-hidden" tabindex="-1" aria-hidden="true" multiple>
</section>

<section id="unfinished" aria-labelledby="unfinished-title" hidden>
  <h2 id="unfinished-title">Unfinished uploads</h2>
  <p class="hint">Pick the same file again to go on from where it stopped.</p>
  <ul id="unfinished-list" class="rows"></ul>
  <input type="file" id="resume-input" class="visually-hidden" tabindex="-1" aria-hidden="true">
</section>

<section id="uploads" aria-labelledby="uploads-title" hidden>
  <div class="section-head">
    <h2 id="uploads-title">Uploads</h2>
    <div class="toolbar" role="group" aria-label="All uploads">
      <button type="button" id="pause-all">Pause all</button>
      <button type="button" id="resume-all">Resume all</button>
      <button type="button" id="cancel-all">Cancel all</button>
      <button type="button" id="clear-done">Clear finished</button>
    </div>
  </div>
  <ul id="upload-list" class="rows"></ul>
</section>

<section id="files" aria-labelledby="files-title" hidden>
  <div class="section-head">
    <h2 id="files-title">Your files</h2>
    <div class="toolbar"><button type="button" id="files-refresh">Refresh</button></div>
  </div>
  <p id="files-status" class="hint" role="status"></p>
  <ul id="file-list" class="rows"></ul>
  <button type="button" id="files-more" hidden>Show more</button>
</section>
<div id="announcer" class="visually-hidden" aria-live="polite"></div>
</main>
</body>
</html>
`;
}
