import http, { IncomingMessage } from 'node:http';
import https from 'node:https';
import { CliConfig, authHeaders, urlOf } from './config';
import { CliError, EXIT, exitForStatus, networkError } from './errors';

/** A connection that carries nothing for this long is given up. */
const IDLE_MS = 60_000;

type Params = Record<string, string | number | undefined>;

export interface RequestOptions {
  params?: Params;
  /** a urlencoded form body (the course's routes read r.Form) */
  form?: Params;
  headers?: Record<string, string>;
}

/** What failed, for the message: "stat 8834a681…". */
export type What = string;

/** An answer of the server; `body` is the response stream, for the caller to read or drop. */
export interface Response {
  method: string;
  status: number;
  ok: boolean;
  url: string;
  headers: { get(name: string): string | null };
  body: IncomingMessage;
  json(): Promise<unknown>;
  /** drops the body (and the connection with it) */
  cancel(): void;
}

function wrap(method: string, url: URL, res: IncomingMessage): Response {
  const status = res.statusCode ?? 0;
  return {
    method,
    status,
    ok: status >= 200 && status < 300,
    url: url.href,
    headers: { get: name => { const v = res.headers[name.toLowerCase()]; return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v; } },
    body: res,
    async json() {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    },
    cancel: () => res.destroy(),
  };
}

/** The server's error body: `{ code, msg }` (REST API) or `{ code: -1, msg, error }` (course routes). */
function serverMessage(status: number, body: unknown): { text: string; code?: string } {
  const b = body as { code?: unknown; msg?: unknown; error?: unknown; message?: unknown } | undefined;
  const code = typeof b?.error === 'string' ? b.error : typeof b?.code === 'string' ? b.code : undefined;
  const msg = typeof b?.msg === 'string' ? b.msg : typeof b?.message === 'string' ? b.message : undefined;
  return { text: msg ?? `HTTP ${status}`, code };
}

/**
 * The server's answers as errors: one line that says what failed and why,
 * with the exit code for the status (401/403 auth, 404 not found, 5xx server).
 */
export async function httpError(what: What, res: Response, cfg: CliConfig): Promise<CliError> {
  const json = /json/.test(res.headers.get('content-type') ?? '');
  let body: unknown;
  if (json) body = await res.json().catch(() => undefined);
  else res.cancel();
  const { text, code } = serverMessage(res.status, body);
  const tail = code ? ` (${res.status} ${code})` : ` (${res.status})`;
  if (res.status === 401 || res.status === 403) {
    const hint = cfg.token ? 'the server refused the token' : 'the server wants a token: pass --token or set SONOFS_TOKEN';
    return new CliError(EXIT.AUTH, `${what}: ${hint}${tail}`);
  }
  // The plugin's 404s name their code (a HEAD's has no body to tell): any other is a wrong
  // --url or --prefix, or another server on that port.
  const head = res.method === 'HEAD';
  if (res.status === 404 && (code === 'NO_SUCH_ROUTE' || (!code && !head))) {
    return new CliError(EXIT.UNAVAILABLE, `${what}: ${res.url} is not a sonofs route; check --url and --prefix${tail}`);
  }
  if (res.status === 404 && !code) return new CliError(EXIT.NOT_FOUND, `${what}: not found${tail}`);
  return new CliError(exitForStatus(res.status), `${what}: ${text}${tail}`);
}

/** One request to the server, with the token; network failures become exit 5. */
export async function send(cfg: CliConfig, method: string, route: string, what: What, opts: RequestOptions = {}): Promise<Response> {
  const url = urlOf(cfg, route, opts.params);
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(cfg), ...opts.headers };
  let body: string | undefined;
  if (opts.form) {
    const form = new URLSearchParams();
    for (const [ k, v ] of Object.entries(opts.form)) if (v !== undefined) form.set(k, String(v));
    body = form.toString();
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  }
  if (cfg.verbose) process.stderr.write(`> ${method} ${url.href}\n`);
  if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
  const res = await new Promise<Response>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, { method, headers }, r => resolve(wrap(method, url, r)));
    req.on('error', err => reject(networkError(what, cfg.base.origin, err)));
    // an idle connection (no answer, or a download that stalls) is given up
    req.setTimeout(IDLE_MS, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.end(body);
  });
  if (cfg.verbose) process.stderr.write(`< ${res.status} ${res.body.statusMessage ?? ''}\n`);
  return res;
}

/** A request whose answer is JSON; any status outside 2xx is thrown as a CliError. */
export async function sendJson<T>(cfg: CliConfig, method: string, route: string, what: What, opts: RequestOptions = {}): Promise<T> {
  const res = await send(cfg, method, route, what, opts);
  if (!res.ok) throw await httpError(what, res, cfg);
  try {
    return await res.json() as T;
  } catch (err) {
    throw new CliError(EXIT.UNAVAILABLE, `${what}: the server's answer is not JSON; is ${cfg.base.href} a sonofs server?`, err);
  }
}
