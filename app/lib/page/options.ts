import assert from 'node:assert';

/** `config.sonofs.page` as an app writes it: every field optional, the rest defaults. */
export interface SonofsPageOptions {
  /** bytes per tus PATCH request the page sends (default 8 MiB); a pause or a cut loses at most the chunk in flight */
  chunkSize?: number;
  /** files larger than this are uploaded without hashing them first for 秒传 (default 1 GiB) */
  hashMaxSize?: number;
  /** files hashed or uploaded at once (default 3) */
  parallel?: number;
  /** waits (ms) before each retry of a failed request, tus-js-client's `retryDelays`; then the row shows the error */
  retryDelays?: number[];
  /**
   * Where the page's sign-in form posts `username` and `password` (urlencoded); the answer's
   * `data.Token` (the course's) or `token` is sent as `Authorization: Bearer` from then on.
   * No sign-in form without it.
   */
  signinUrl?: string;
}

export type PageSettings = Required<Omit<SonofsPageOptions, 'signinUrl'>> & { signinUrl: string | null };

const MiB = 1024 ** 2;

export const PAGE_DEFAULTS: PageSettings = {
  chunkSize: 8 * MiB,
  hashMaxSize: 1024 * MiB,
  parallel: 3,
  // about a minute in all: a node restarting comes back within it
  retryDelays: [ 0, 1000, 3000, 5000, 10_000, 20_000, 30_000 ],
  signinUrl: null,
};

const positive = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/** The page's settings, or undefined for `page: false` (the plain form only). Checked once, at start-up. */
export function resolvePageOptions(page: boolean | SonofsPageOptions | undefined): PageSettings | undefined {
  if (page === false) return undefined;
  const o = { ...PAGE_DEFAULTS, ...(typeof page === 'object' && page ? page : {}) };
  const name = (key: string) => `[egg-sonofs] config.sonofs.page.${key}`;
  assert(positive(o.chunkSize), `${name('chunkSize')} must be a positive integer (bytes), got ${o.chunkSize}`);
  assert(Number.isSafeInteger(o.hashMaxSize) && o.hashMaxSize >= 0, `${name('hashMaxSize')} must be an integer >= 0 (bytes), got ${o.hashMaxSize}`);
  assert(positive(o.parallel), `${name('parallel')} must be a positive integer, got ${o.parallel}`);
  assert(Array.isArray(o.retryDelays) && o.retryDelays.every(d => Number.isFinite(d) && d >= 0),
    `${name('retryDelays')} must be an array of waits in ms`);
  assert(o.signinUrl === null || (typeof o.signinUrl === 'string' && o.signinUrl !== ''), `${name('signinUrl')} must be a URL or path`);
  return { chunkSize: o.chunkSize, hashMaxSize: o.hashMaxSize, parallel: o.parallel, retryDelays: o.retryDelays, signinUrl: o.signinUrl ?? null };
}
