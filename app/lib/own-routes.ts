import type { Application, Context } from 'egg';
import type { SonofsConfig } from '../../config/config.default';
import { fuploadEnabled } from './fupload-routes';

type Matcher = (ctx: Context) => boolean;
// egg's own path matcher (what egg-core and egg-security apply to match/ignore); it ships no types
const pathMatching: (opts: { match: unknown; pathToRegexpModule?: unknown }) => Matcher = require('egg-path-matching');

/**
 * The plugin's own paths, so that app-wide settings are changed for exactly
 * those and never for an app route that shares the prefix (`POST /file/mine`).
 */
export function ownRoutes(cfg: SonofsConfig) {
  const p = cfg.prefix;
  const course = cfg.routes ? {
    /** change what is stored: may be checked for CSRF (`sonofs.csrf`) */
    changing: [ '/upload', '/update', '/delete', '/fastupload', '/mpupload/init', '/mpupload/uppart', '/mpupload/complete',
      '/mpupload/cancel' ].map(s => p + s),
    reading: [ '/upload/suc', '/meta', '/query', '/download', '/mpupload/status' ].map(s => p + s),
  } : { changing: [], reading: [] };
  // Callers of the task API are servers and upload clients holding tokens, not browsers with cookies.
  const fupload = fuploadEnabled(cfg.fupload)
    ? [ '/new/task', '/files/block', '/files/blocks/info', '/files/state' ].map(s => cfg.fupload.prefix + s) : [];
  const changing = new Set(course.changing);
  const exempt = new Set([ ...course.reading, ...fupload ]);
  const all = new Set([ ...changing, ...exempt ]);
  const tus = cfg.tus.enabled ? cfg.tus.path : undefined;
  // tus clients send no CSRF token, and a browser cannot send tus's headers
  // cross-site without a CORS preflight, which `tus.cors` governs.
  const isTus = (path: string) => tus !== undefined && (path === tus || path.startsWith(`${tus}/`));
  return {
    all: (ctx => all.has(ctx.path) || isTus(ctx.path)) as Matcher,
    csrfExempt: (ctx => exempt.has(ctx.path) || isTus(ctx.path) || (!cfg.csrf && changing.has(ctx.path))) as Matcher,
  };
}

/** Appends to an app's ignore list, which replaces plugin defaults instead of merging with them. */
function addIgnore(opts: { ignore?: unknown; match?: unknown }, fn: Matcher): void {
  opts.ignore = [ ...(opts.ignore ? ([] as unknown[]).concat(opts.ignore) : []), fn ];
}

/**
 * At configDidLoad, where every setting the app made is known:
 * - CSRF: Egg's check is skipped for the plugin's routes only (see `ownRoutes`);
 * - multipart: an app in `mode: 'file'` (Egg's TypeScript scaffold) would
 *   consume every multipart body before the route, so the plugin's routes are
 *   left out of that middleware and parse their bodies themselves, with the
 *   plugin's limits; the app's routes keep the mode and limits it chose.
 */
export function configureOwnRoutes(app: Application): void {
  const config = app.config as any;
  const own = ownRoutes(config.sonofs);
  const csrf = config.security.csrf;
  if (csrf.match) {
    app.coreLogger.warn('[egg-sonofs] security.csrf.match is set: it decides alone which of the plugin routes are checked');
  } else {
    addIgnore(csrf, own.csrfExempt);
  }
  const mp = config.multipart;
  if (mp.match) {
    // `match` and `ignore` cannot both be set: narrow the app's match instead.
    const theirs = pathMatching({ match: mp.match, pathToRegexpModule: (app as any).options?.pathToRegexpModule });
    mp.match = (ctx: Context) => !own.all(ctx) && theirs(ctx);
  } else {
    addIgnore(mp, own.all);
  }
}
