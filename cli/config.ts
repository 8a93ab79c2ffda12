import { usage } from './errors';

export const DEFAULTS = {
  url: 'http://127.0.0.1:7001',
  prefix: '/file',
  tusPath: '/files',
} as const;

/** The global options as commander hands them out (flag, then env, then default). */
export interface GlobalOptions {
  url: string;
  token?: string;
  prefix: string;
  tusPath: string;
  verbose?: boolean;
  progress: boolean;
}

export interface CliConfig {
  /** the server, with any path it is mounted under (a proxy's /storage), without a trailing slash */
  base: URL;
  /** the plugin's route prefix (`config.sonofs.prefix`) */
  prefix: string;
  /** the tus endpoint's path (`config.sonofs.tus.path`) */
  tusPath: string;
  token?: string;
  verbose: boolean;
  /** draw progress bars (only ever on a terminal) */
  progress: boolean;
}

function path(name: string, value: string): string {
  if (!value.startsWith('/')) throw usage(`${name} must start with "/", got "${value}"`);
  return value.replace(/\/+$/, '');
}

export function resolveConfig(o: GlobalOptions): CliConfig {
  let base: URL;
  try {
    base = new URL(o.url);
  } catch {
    throw usage(`invalid URL "${o.url}": expected e.g. ${DEFAULTS.url}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw usage(`invalid URL "${o.url}": only http:// and https:// are supported`);
  if (base.search || base.hash) throw usage(`invalid URL "${o.url}": no query or fragment, only scheme, host, port and an optional path`);
  const token = o.token?.trim();
  if (token !== undefined && /[\r\n]/.test(token)) throw usage('the token must be on one line');
  return {
    base, prefix: path('--prefix', o.prefix), tusPath: path('--tus-path', o.tusPath), token: token || undefined,
    verbose: !!o.verbose, progress: o.progress,
  };
}

/** An absolute URL on the server: base path + `route`, with query parameters. */
export function urlOf(cfg: CliConfig, route: string, params: Record<string, string | number | undefined> = {}): URL {
  const u = new URL(cfg.base.href);
  u.pathname = `${cfg.base.pathname.replace(/\/+$/, '')}${route}`;
  for (const [ k, v ] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, String(v));
  return u;
}

/** Headers every request carries. */
export function authHeaders(cfg: CliConfig): Record<string, string> {
  return cfg.token ? { Authorization: `Bearer ${cfg.token}` } : {};
}
