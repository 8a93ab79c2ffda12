/**
 * Exit codes of `sonofs`, documented in the README ("Command line"). Scripts
 * branch on them, so they never change meaning.
 */
export const EXIT = {
  OK: 0,
  /** anything else: a refused request (400, 409, 413 ...), a local file that cannot be read or written */
  GENERAL: 1,
  /** bad command line: unknown command or option, missing argument, malformed --url, --parallel ... */
  USAGE: 2,
  /** no such file id or sha1 on the server, or no such local file */
  NOT_FOUND: 3,
  /** the server refused the token (401, 403) */
  AUTH: 4,
  /** the server could not be reached, timed out, or answered 5xx */
  UNAVAILABLE: 5,
  /** the bytes received or stored are not the sha1 they should be */
  INTEGRITY: 6,
  /** Ctrl-C (SIGINT): what was sent or received is kept, run the command again to resume */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI reports as one line on stderr and exits with `exit`. */
export class CliError extends Error {
  constructor(readonly exit: ExitCode, message: string, readonly cause?: unknown) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string) => new CliError(EXIT.USAGE, message);

/** The exit code for an HTTP error status. */
export function exitForStatus(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.AUTH;
  if (status === 404 || status === 410) return EXIT.NOT_FOUND;
  if (status >= 500) return EXIT.UNAVAILABLE;
  return EXIT.GENERAL;
}

/** Node's network error codes in words. */
const NETWORK: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
};

/** A failed connection (fetch's "fetch failed" carries the socket error as `cause`) as a CliError. */
export function networkError(what: string, url: string, err: unknown): CliError {
  let e = err as (Error & { code?: string; cause?: unknown }) | undefined;
  while (e && !e.code && e.cause) e = e.cause as typeof e;
  const why = (e?.code && NETWORK[e.code]) ?? (e?.name === 'TimeoutError' ? 'timed out' : e?.message ?? String(err));
  return new CliError(EXIT.UNAVAILABLE, `${what}: cannot reach ${url}: ${why}`, err);
}

/** A local file error (fs) as a CliError. */
export function localError(what: string, err: unknown): CliError {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return new CliError(EXIT.NOT_FOUND, `${what}: no such file or directory`, err);
  if (e?.code === 'EISDIR') return new CliError(EXIT.GENERAL, `${what}: is a directory`, err);
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return new CliError(EXIT.GENERAL, `${what}: permission denied`, err);
  if (e?.code === 'ENOSPC') return new CliError(EXIT.GENERAL, `${what}: no space left on device`, err);
  return new CliError(EXIT.GENERAL, `${what}: ${e?.message ?? String(err)}`, err);
}
