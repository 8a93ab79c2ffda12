import type { Application, Context } from 'egg';
import { MethodNotAllowedError, NotFoundError, SonofsError } from '../../../lib';
import { TUS_VERSION, checkTusResumable, corsHeaders, isUploadId } from '../../../lib/tus';
import { sendError } from '../http-errors';
import { createUpload } from './create';
import { patchUpload } from './patch';
import { describeServer, downloadUpload, headUpload, terminateUpload } from './read';
import { TusRequest } from './request';
import { forwardToUploadOwner, placeNewUpload } from '../session-forward';

type Handler = (t: TusRequest, id: string) => Promise<void>;

/** One small handler per method, as in tus-node-server. */
const COLLECTION: Record<string, Handler> = { POST: createUpload, OPTIONS: describeServer };
const UPLOAD: Record<string, Handler> = {
  HEAD: headUpload, GET: downloadUpload, PATCH: patchUpload, DELETE: terminateUpload, OPTIONS: describeServer,
};

/** `/files/` and `/files` are the same path; a configured trailing slash is dropped. */
export function tusPath(app: Application): string {
  return app.config.sonofs.tus.path.replace(/\/+$/, '');
}

/**
 * Every request under the tus path: Tus-Resumable and CORS headers on every
 * answer (errors included), X-HTTP-Method-Override (C8), the version check
 * (C2) before anything else, then the method's handler. Errors are the
 * plugin's `{ code, msg }`; a 412 also says which version we speak.
 */
async function dispatch(ctx: Context, path: string, id: string | undefined): Promise<void> {
  const method = (ctx.get('X-HTTP-Method-Override') || ctx.method).toUpperCase();
  const t = new TusRequest(ctx, method, path);
  ctx.set('Tus-Resumable', TUS_VERSION);
  const preflight = method === 'OPTIONS' && !!ctx.get('Access-Control-Request-Method');
  for (const [ name, value ] of Object.entries(corsHeaders(ctx.get('Origin') || undefined, preflight, t.cfg.cors))) {
    if (name === 'Vary') ctx.vary(value);
    else ctx.set(name, value);
  }
  try {
    checkTusResumable(t.header('Tus-Resumable'), method);
    const handlers = id === undefined ? COLLECTION : UPLOAD;
    const handler = handlers[method];
    if (!handler) {
      ctx.set('Allow', Object.keys(handlers).join(', '));
      throw new MethodNotAllowedError(method, Object.keys(handlers));
    }
    if (id !== undefined && method !== 'OPTIONS' && !isUploadId(id)) throw new NotFoundError('UPLOAD_NOT_FOUND', 'no upload has this id');
    // bytes go to the node that holds the upload's space (HEAD answers from the shared record)
    if (id !== undefined && (method === 'PATCH' || method === 'DELETE') && await forwardToUploadOwner(ctx, id)) return;
    // a new upload is created in the group placement picks (a concatenation stays with its parts' sessions)
    if (id === undefined && method === 'POST' && !t.header('Upload-Concat') && await placeNewUpload(ctx, creationSize(t))) return;
    await handler(t, id ?? '');
  } catch (err) {
    if ((err as SonofsError).status === 412) ctx.set('Tus-Version', TUS_VERSION);
    sendError(ctx, err);
  }
  // An answer before the whole body was read (refused, or another request
  // took over): close the connection rather than read the rest to reuse it.
  if (!ctx.req.complete && ctx.get('Content-Length') !== '0' && (ctx.get('Content-Length') || ctx.get('Transfer-Encoding'))) ctx.set('Connection', 'close');
  // Egg's overrideMethod made this POST a HEAD, so Koa would send a HEAD's
  // headers (a Content-Length) without the body; answer it as the POST it is
  // (Node drops the body itself if the request really was a HEAD).
  if (ctx.method === 'HEAD' && method === 'HEAD' && ctx.get('X-HTTP-Method-Override')) {
    ctx.method = 'POST';
    if (ctx.body === undefined || ctx.body === null) ctx.body = '';
  }
}

/** The bytes a POST announces for placement: its Upload-Length, else its body's length (a malformed header is refused by the node that takes it). */
function creationSize(t: TusRequest): number {
  const announced = /^\d{1,15}$/.test(t.header('Upload-Length') ?? '') ? Number(t.header('Upload-Length')) : undefined;
  return announced ?? t.ctx.request.length ?? 0;
}

/** Registers the tus endpoint (config.sonofs.tus) on the app's router. */
export function registerTusRoutes(app: Application): void {
  if (!app.config.sonofs.tus.enabled) return;
  const path = tusPath(app);
  app.router.all(path, ctx => dispatch(ctx, path, undefined));
  app.router.all(`${path}/:id`, ctx => dispatch(ctx, path, ctx.params.id));
  app.router.all(`${path}/(.*)`, async ctx => {
    ctx.set('Tus-Resumable', TUS_VERSION);
    sendError(ctx, new NotFoundError('NO_SUCH_ROUTE', `no route ${ctx.method} ${ctx.path}`));
  });
}
