import { auth } from './auth';
import type { PageConfig } from './config';

/** A FileMeta of the store's API (`/file/query`, `/file/meta`...). */
export interface FileMeta {
  FileSha1: string;
  FileName: string;
  FileSize: number;
  Location: string;
  UploadAt: string;
  FileId: string;
  Mime: string;
}

/** A refused request, with the server's own words. */
export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly code?: string) {
    super(message);
  }
}

/** The text a failed answer carries: the store's `msg` (`{code, msg}`), another JSON `message`, or the body itself. */
export function errorText(status: number, body: string): string {
  let json: any;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  const msg = json && typeof json === 'object' ? json.msg ?? json.message ?? json.status : undefined;
  if (typeof msg === 'string' && msg) return msg;
  const text = body.trim().replace(/\s+/g, ' ');
  if (text && !text.startsWith('<')) return text.slice(0, 300);
  return status ? `the server answered ${status}` : 'the server could not be reached';
}

function codeOf(body: string): string | undefined {
  try {
    const json = JSON.parse(body);
    return typeof json?.error === 'string' ? json.error : typeof json?.code === 'string' ? json.code : undefined;
  } catch {
    return undefined;
  }
}

export class Api {
  constructor(private readonly cfg: PageConfig) {}

  /** headers of every request the page makes: the token, and Egg's CSRF token where the app checks one */
  headers(method: string): Record<string, string> {
    const headers: Record<string, string> = { Accept: 'application/json', ...auth.headers() };
    if (this.cfg.csrf && method !== 'GET' && method !== 'HEAD') headers[this.cfg.csrf.header] = this.cfg.csrf.token;
    return headers;
  }

  async call<T>(method: string, url: string, form?: Record<string, string>): Promise<T> {
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: this.headers(method),
        body: form ? new URLSearchParams(form) : undefined,
        credentials: 'same-origin',
      });
    } catch (err) {
      throw new ApiError(`the server could not be reached (${(err as Error).message})`, 0);
    }
    const body = await res.text();
    if (!res.ok) throw new ApiError(errorText(res.status, body), res.status, codeOf(body));
    try {
      return JSON.parse(body) as T;
    } catch {
      throw new ApiError(`the server answered something other than JSON: ${body.slice(0, 100)}`, res.status);
    }
  }

  list(limit: number): Promise<FileMeta[]> {
    return this.call('GET', `${this.cfg.prefix}/query?limit=${limit}`);
  }

  rename(hash: string, name: string): Promise<FileMeta> {
    return this.call('POST', `${this.cfg.prefix}/update`, { op: '0', filehash: hash, filename: name });
  }

  async remove(hash: string): Promise<void> {
    await this.call('POST', `${this.cfg.prefix}/delete`, { filehash: hash });
  }

  /** 秒传: the store links content it holds already to this user; null when it lacks it (upload it then) */
  async fastUpload(hash: string, name: string, size: number): Promise<FileMeta | null> {
    const res = await this.call<{ code: number; msg: string; data: FileMeta | null }>('POST', `${this.cfg.prefix}/fastupload`, {
      filehash: hash, filename: name, filesize: String(size),
    });
    return res.code === 0 && res.data ? res.data : null;
  }

  /** posts username and password to the app's sign-in URL; the token of its answer (the course's `data.Token`) */
  async signIn(username: string, password: string): Promise<{ token: string; username: string }> {
    const res = await this.call<any>('POST', this.cfg.signinUrl!, { username, password });
    const data = res?.data && typeof res.data === 'object' ? res.data : {};
    const token = data.Token ?? data.token ?? res?.token ?? res?.access_token;
    if (typeof token !== 'string' || !token) throw new ApiError(errorText(200, JSON.stringify(res)) || 'the sign-in answer holds no token', 200);
    return { token, username: data.Username ?? data.username ?? username };
  }
}
