import { TUS_REQUEST_HEADERS, TUS_RESPONSE_HEADERS } from './headers';

export interface TusCorsOptions {
  /** origins allowed to call the tus endpoint from a browser; `*` allows any */
  origins: string[];
  /** request headers allowed besides the tus ones (e.g. the app's auth header) */
  allowHeaders: string[];
  /** let browsers send cookies / HTTP auth (Access-Control-Allow-Credentials) */
  credentials: boolean;
  /** how long a browser may cache a preflight answer (seconds) */
  maxAge: number;
}

export const TUS_METHODS = [ 'POST', 'HEAD', 'PATCH', 'OPTIONS', 'GET', 'DELETE' ];

/**
 * CORS response headers for a request from `origin`: none when the origin
 * is not allowed (the browser then refuses to hand the answer to the page).
 * The origin is echoed rather than `*`, so credentials can be allowed too.
 */
export function corsHeaders(origin: string | undefined, preflight: boolean, o: TusCorsOptions): Record<string, string> {
  if (!origin) return {};
  const allowed = o.origins.includes('*') || o.origins.some(a => a.toLowerCase() === origin.toLowerCase());
  if (!allowed) return { Vary: 'Origin' };
  const h: Record<string, string> = {
    'Access-Control-Allow-Origin': origin,
    Vary: 'Origin',
    'Access-Control-Expose-Headers': TUS_RESPONSE_HEADERS.join(', '),
  };
  if (o.credentials) h['Access-Control-Allow-Credentials'] = 'true';
  if (preflight) {
    h['Access-Control-Allow-Methods'] = TUS_METHODS.join(', ');
    h['Access-Control-Allow-Headers'] = [ ...TUS_REQUEST_HEADERS, ...o.allowHeaders ].join(', ');
    h['Access-Control-Max-Age'] = String(o.maxAge);
  }
  return h;
}
