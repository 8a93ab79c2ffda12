import type { Application, Context } from 'egg';
import type { SonofsConfig } from '../../config/config.default';
import { NODE_UPLOAD_PATH } from '../../lib/cluster/forward-upload';
import { COPY_NOW_PATH } from '../../lib/replication/copy-ack';
import { SESSION_BYTES_PATH } from '../../lib/replication/session-push';
import { fuploadEnabled } from './fupload-routes';

type Matcher = (ctx: Context) => boolean;
// egg's own path matcher (what egg-core and egg-security apply to match/ignore); it ships no types
const pathMatching: (opts: { match?: unknown; ignore?: unknown; pathToRegexpModule?: unknown }) => Matcher = require('egg-path-matching');

/** `/files/` and `/files` are one path to Egg's router (not strict), so to us too. */
const trimSlash = (p: string) => p.replace(/\/+$/, '') || '/';

/**
 * The plugin's own paths, so that app-wide settings are changed for exactly
 * those and never for an app route that shares the prefix (`POST /file/mine`).
 */
export function ownRoutes(cfg: SonofsConfig) {
  const p = trimSlash(cfg.prefix);
  const course = cfg.routes ? {
    /** change what is stored: may be checked for CSRF (`sonofs.csrf`) */
    changing: [ '/upload', '/update', '/delete', '/fastupload', '/mpupload/init', '/mpupload/uppart', '/mpupload/complete',
      '/mpupload/cancel' ].map(s => p + s),
    reading: [ '/upload/suc', '/meta', '/query', '/download', '/mpupload/status', '/status' ].map(s => p + s),
  } : { changing: [], reading: [] };
  // Callers of the task API are servers and upload clients holding tokens, not browsers with cookies.
  const fp = trimSlash(cfg.fupload.prefix);
  const fupload = fuploadEnabled(cfg.fupload) ? [ '/new/task', '/files/block', '/files/blocks/info', '/files/state' ].map(s => fp + s) : [];
  const changing = new Set(course.changing);
  // the node-to-node POSTs and PUTs are signed (node-routes.ts, replication-ack.ts, session-mirror.ts); uploads' bodies are raw bytes
  const exempt = new Set([ ...course.reading, ...fupload, NODE_UPLOAD_PATH, COPY_NOW_PATH, SESSION_BYTES_PATH ]);
  const tus = cfg.tus.enabled ? trimSlash(cfg.tus.path) : undefined;
  // tus clients send no CSRF token, and a browser cannot send tus's headers
  // cross-site without a CORS preflight, which `tus.cors` governs.
  const isTus = (path: string) => tus !== undefined && (path === tus || path.startsWith(`${tus}/`));
  const checked = (path: string) => changing.has(path) && cfg.csrf;
  const uppart = `${p}/mpupload/uppart`;
  // the upload page's scripts and style (GET only)
  const isAsset = (path: string) => cfg.routes && path.startsWith(`${p}/upload/assets/`);
  return {
    /** bodies that are raw bytes under any Content-Type (tus PATCH, a course chunk): never parsed as forms */
    rawBody: (ctx => { const path = trimSlash(ctx.path); return isTus(path) || path === NODE_UPLOAD_PATH || path === SESSION_BYTES_PATH || (cfg.routes && path === uppart); }) as Matcher,
    /** any route of the plugin's */
    all: (ctx => { const path = trimSlash(ctx.path); return changing.has(path) || exempt.has(path) || isTus(path) || isAsset(path); }) as Matcher,
    /** which of its routes Egg's CSRF check must pass over */
    csrfExempt: (ctx => {
      const path = trimSlash(ctx.path);
      return exempt.has(path) || isTus(path) || isAsset(path) || (changing.has(path) && !checked(path));
    }) as Matcher,
  };
}

/**
 * Narrows an Egg middleware's `match`/`ignore` so that the plugin decides for
 * its own routes (`own`: true when the middleware should run) and the app's
 * setting for every other path. A function in `match` (egg-path-matching
 * accepts one) replaces both, since `match` and `ignore` cannot be set together.
 */
function decideOwnRoutes(app: Application, opts: { match?: unknown; ignore?: unknown }, isOwn: Matcher, own: Matcher): void {
  const set = opts.match ?? opts.ignore;
  const theirs = set === undefined ? () => true
    : pathMatching({ [opts.match !== undefined ? 'match' : 'ignore']: set, pathToRegexpModule: (app as any).options?.pathToRegexpModule });
  delete opts.ignore;
  opts.match = (ctx: Context) => (isOwn(ctx) ? own(ctx) : theirs(ctx));
}

/**
 * At configDidLoad, where every setting the app made is known:
 * - CSRF: Egg's check passes over the plugin's routes only (see `ownRoutes`;
 *   `sonofs.csrf` keeps it on those that change what is stored), whatever
 *   `match` or `ignore` the app set for its own;
 * - multipart: an app in `mode: 'file'` (Egg's TypeScript scaffold) would
 *   consume every multipart body before the route, so the plugin's routes are
 *   left out of that middleware and parse their bodies themselves, with the
 *   plugin's limits; the app's routes keep the mode and limits it chose;
 * - the body parser passes over the routes whose bodies are raw bytes.
 */
export function configureOwnRoutes(app: Application): void {
  const config = app.config as any;
  const own = ownRoutes(config.sonofs);
  const csrf = config.security?.csrf;
  // `csrf: false` (or `enable: false`) turns the check off for the whole app: nothing to exempt
  if (csrf && typeof csrf === 'object' && csrf.enable !== false) decideOwnRoutes(app, csrf, own.all, ctx => !own.csrfExempt(ctx));
  if (config.multipart) decideOwnRoutes(app, config.multipart, own.all, () => false);
  // a tus PATCH of another type is a 415, not a parsed form; a chunk is the bytes as sent
  if (config.bodyParser) decideOwnRoutes(app, config.bodyParser, own.rawBody, () => false);
}
