/**
 * The user's token, kept in localStorage (`sonofs.token`) and sent as
 * `Authorization: Bearer` on every request of the page. It comes from the
 * sign-in form or from `?token=` in the page's address (removed from the
 * address bar once stored). Without one, requests go out as they are and
 * the app's `authenticate` decides (the default: user `anonymous`).
 */
const TOKEN_KEY = 'sonofs.token';
const USER_KEY = 'sonofs.username';

function read(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // storage off (private mode): the token lasts as long as the page
  }
}

let memoryToken: string | null = null;
let memoryUser: string | null = null;
const listeners: Array<() => void> = [];

export const auth = {
  token(): string | null {
    return read(TOKEN_KEY) ?? memoryToken;
  },
  username(): string | null {
    return read(USER_KEY) ?? memoryUser;
  },
  set(token: string, username: string | null): void {
    memoryToken = token;
    memoryUser = username;
    write(TOKEN_KEY, token);
    write(USER_KEY, username);
    listeners.forEach(fn => fn());
  },
  clear(): void {
    memoryToken = null;
    memoryUser = null;
    write(TOKEN_KEY, null);
    write(USER_KEY, null);
    listeners.forEach(fn => fn());
  },
  onChange(fn: () => void): void {
    listeners.push(fn);
  },
  /** `?token=...` (and `&username=`) in the address: stored, then taken out of the address bar and history */
  takeFromUrl(): void {
    const url = new URL(location.href);
    const token = url.searchParams.get('token');
    if (!token) return;
    const username = url.searchParams.get('username');
    url.searchParams.delete('token');
    url.searchParams.delete('username');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    memoryToken = token;
    memoryUser = username;
    write(TOKEN_KEY, token);
    write(USER_KEY, username);
  },
  headers(): Record<string, string> {
    const token = this.token();
    return token ? { Authorization: `Bearer ${token}` } : {};
  },
  /** who the page's uploads belong to, as far as the page knows: part of each upload's fingerprint */
  tag(): string {
    return this.username() ?? (this.token() ? 'token' : 'anonymous');
  },
};
