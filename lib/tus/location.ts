/** Where the client reached us: what an absolute upload URL is built from. */
export interface PublicOrigin {
  proto: 'http' | 'https';
  /** host[:port] as the client addressed it; undefined without a Host header (then URLs are relative) */
  host?: string;
  /** path prefix a reverse proxy strips before forwarding (X-Forwarded-Prefix), without a trailing slash */
  prefix: string;
}

type Headers = Record<string, string | string[] | undefined>;

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const PREFIX = /^(?:\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*\/?$/;

/** The first value of a header that proxies may turn into a comma-separated list. */
function first(h: string | string[] | undefined): string | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  return v?.split(',')[0].trim() || undefined;
}

/**
 * The public scheme, host and prefix of a request. X-Forwarded-Proto, -Host
 * and -Prefix are honoured only when `trustProxy` (anyone can send them, so
 * trusting them without a proxy in front would let a client choose the
 * URLs we hand out); malformed values are ignored.
 */
export function publicOrigin(headers: Headers, opts: { trustProxy: boolean; encrypted: boolean }): PublicOrigin {
  let proto: 'http' | 'https' = opts.encrypted ? 'https' : 'http';
  let host = first(headers.host);
  let prefix = '';
  if (opts.trustProxy) {
    const fp = first(headers['x-forwarded-proto'])?.toLowerCase();
    if (fp === 'http' || fp === 'https') proto = fp;
    const fh = first(headers['x-forwarded-host']);
    if (fh && HOST.test(fh)) host = fh;
    const fx = first(headers['x-forwarded-prefix']);
    if (fx && PREFIX.test(fx)) prefix = fx.replace(/\/+$/, '');
  }
  return { proto, host: host && HOST.test(host) ? host : undefined, prefix };
}

/** An upload's URL: absolute when the host is known, else an absolute path. */
export function uploadUrl(origin: PublicOrigin, tusPath: string, id: string): string {
  const path = `${origin.prefix}${tusPath}/${id}`;
  return origin.host ? `${origin.proto}://${origin.host}${path}` : path;
}
