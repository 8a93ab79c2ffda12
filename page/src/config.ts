/** What the server put in the page (app/lib/page/html.ts, PageConfig). */
export interface PageConfig {
  /** prefix of the store's routes, `/file` */
  prefix: string;
  /** the tus endpoint's path, or null when the app turned tus off (then a form post per file) */
  tusEndpoint: string | null;
  chunkSize: number;
  hashMaxSize: number;
  parallel: number;
  retryDelays: number[];
  signinUrl: string | null;
  csrf: { header: string; token: string } | null;
  hashWorker: string;
  maxFileSize: number;
}

export function readConfig(): PageConfig {
  const el = document.getElementById('sonofs-page-config');
  return JSON.parse(el?.textContent || '{}') as PageConfig;
}
