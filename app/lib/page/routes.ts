import type { Application, Context } from 'egg';
import { NotFoundError } from '../../../lib';
import { answeringErrorsWith, sendError } from '../http-errors';
import { PageAssets } from './assets';
import { PageConfig, plainUploadPage, uploadPage } from './html';
import { resolvePageOptions } from './options';

const route = answeringErrorsWith(sendError);

/** Egg's CSRF settings when its check is on for the app. */
function csrfSettings(app: Application): { headerName: string; queryName: string } | undefined {
  const csrf = (app.config as any).security?.csrf;
  if (!csrf || typeof csrf !== 'object' || csrf.enable === false) return undefined;
  return { headerName: csrf.headerName || 'x-csrf-token', queryName: csrf.queryName || '_csrf' };
}

/** The origin of an absolute URL, for the page's Content-Security-Policy. */
function originOf(url: string | null): string {
  if (!url || !/^https?:\/\//i.test(url)) return '';
  try {
    return ` ${new URL(url).origin}`;
  } catch {
    return '';
  }
}

/**
 * GET <prefix>/upload: the upload page (config `sonofs.page`, on by default),
 * or the plain form (`page: false`); GET <prefix>/upload/assets/<file>: its
 * scripts and style, from the package itself, never a CDN.
 */
export function registerPageRoutes(app: Application, prefix: string): void {
  const cfg = app.config.sonofs;
  const settings = resolvePageOptions(cfg.page);
  const csrf = csrfSettings(app);
  let assets: PageAssets | undefined;
  if (settings) {
    const loaded = PageAssets.load();
    if (typeof loaded === 'string') app.logger.warn('[egg-sonofs] serving the plain upload form: %s', loaded);
    else assets = loaded;
  }
  const assetBase = `${prefix}/upload/assets`;
  // the page's own scripts and style, its worker and WebAssembly (the sha1), requests to this origin only
  const policy = settings && [
    "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "style-src 'self'", "img-src 'self' data:",
    `connect-src 'self'${originOf(settings.signinUrl)}`, `form-action 'self'${originOf(settings.signinUrl)}`,
    "frame-ancestors 'self'", "base-uri 'none'", "object-src 'none'",
  ].join('; ');

  app.router.get(`${prefix}/upload`, route(async (ctx: Context) => {
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-cache');
    // Egg makes the CSRF secret (a cookie) only where its check runs, and this route may be exempt from it
    const token = () => {
      (ctx as any).ensureCsrfSecret();
      return ctx.csrf;
    };
    // with sonofs.csrf the form carries Egg's token in its action (the body is not parsed before the check)
    const formCsrf = cfg.csrf && csrf ? { queryName: csrf.queryName, token: token() } : undefined;
    if (!settings || !assets) {
      ctx.body = plainUploadPage(prefix, formCsrf);
      return;
    }
    const config: PageConfig = {
      ...settings,
      prefix,
      tusEndpoint: cfg.tus.enabled ? `${cfg.tus.path.replace(/\/+$/, '')}/` : null,
      hashWorker: `${assetBase}/${assets.names['hash-worker.js']}`,
      maxFileSize: cfg.maxFileSize,
      // the script's requests carry the token where Egg may check it: the plugin's routes (sonofs.csrf), the sign-in
      csrf: csrf && (cfg.csrf || settings.signinUrl) ? { header: csrf.headerName, token: formCsrf?.token ?? token() } : null,
    };
    ctx.set('Content-Security-Policy', policy!);
    ctx.body = uploadPage(config, {
      script: `${assetBase}/${assets.names['page.js']}`,
      style: `${assetBase}/${assets.names['page.css']}`,
    }, formCsrf);
  }));

  app.router.get(`${assetBase}/:name`, route(async (ctx: Context) => {
    if (!assets) throw new NotFoundError('NO_SUCH_ROUTE', `no route ${ctx.method} ${ctx.path}: the upload page is off`);
    assets.serve(ctx, ctx.params.name);
  }));
}
