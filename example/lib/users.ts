import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { open, RootDatabase } from 'lmdb';
import { BadRequestError, ConflictError, SonofsError, UnauthorizedError, UnavailableError } from '../../lib';
import { DEFAULT_COST, ScryptCost, hashPassword, verifyPassword } from './password';
import { TokenSigner } from './tokens';

/**
 * The demo's user accounts: a small LMDB environment of its own (beside the
 * store's catalog under the data root), shared by every worker. A sign-up is
 * a conditional write (`ifNoExists`) inside LMDB's one cross-process write
 * lock, so of two sign-ups of one name, on any workers, exactly one wins.
 * Names are unique regardless of case, as the course's MySQL column was.
 * No Egg here: app/lib/auth.ts and the user controller are the glue.
 */

export interface DemoUsersOptions {
  /** directory of the LMDB environment (created, 0700) */
  dir: string;
  /** how long a token is valid (ms) */
  tokenTtlMs: number;
  /** the HMAC key of tokens; without one a random key is made once and kept in the environment */
  secret?: string;
  passwordMinLength: number;
  /** scrypt cost of new password hashes (stored with each hash) */
  cost?: ScryptCost;
}

/** A user as the routes show it. */
export interface DemoUser {
  /** the user's id for the file store: the name in lower case */
  key: string;
  /** the name as signed up */
  name: string;
  signupAt: number;
  lastActiveAt: number;
}

interface UserRecord {
  name: string;
  /** scrypt hash (password.ts) */
  pwd: string;
  signupAt: number;
  lastActiveAt: number;
}

export const USERNAME_MIN = 3;
export const USERNAME_MAX = 64;
export const PASSWORD_MAX = 1024;
/** the plugin's user of requests without credentials, when the demo allows them */
export const ANONYMOUS = 'anonymous';
/** a user's last activity is written at most this often */
const TOUCH_EVERY_MS = 60_000;

const SECRET_KEY = 'secret';
const userKey = (key: string) => `u:${key}`;

export const invalidParam = (message: string) => new BadRequestError('INVALID_PARAM', `invalid parameter: ${message}`);

/** A form field that must be one non-empty string. */
export function textParam(v: unknown, field: string): string {
  if (v === undefined || v === null || v === '') throw invalidParam(`${field} is required`);
  if (Array.isArray(v)) throw invalidParam(`${field} must be given once`);
  if (typeof v !== 'string') throw invalidParam(`${field} must be text`);
  return v;
}

/**
 * A name: 3 to 64 ASCII letters, digits, `_`, `.` or `-`, starting with a
 * letter (so no name is an fupload task's numeric user id).
 */
export function checkUsername(u: unknown): string {
  const v = textParam(u, 'username');
  if (v.length < USERNAME_MIN || v.length > USERNAME_MAX) {
    throw invalidParam(`username must be ${USERNAME_MIN} to ${USERNAME_MAX} characters long (got ${v.length})`);
  }
  if (!/^[A-Za-z]/.test(v)) throw invalidParam('username must start with a letter');
  if (!/^[A-Za-z0-9_.-]+$/.test(v)) throw invalidParam("username may contain only letters, digits, '_', '.' and '-'");
  if (v.toLowerCase() === ANONYMOUS) throw invalidParam(`username "${ANONYMOUS}" is reserved`);
  return v;
}

export function checkPassword(p: unknown, min: number): string {
  const v = textParam(p, 'password');
  const length = [ ...v ].length;
  if (length < min) throw invalidParam(`password must be at least ${min} characters long`);
  if (length > PASSWORD_MAX) throw invalidParam(`password must be at most ${PASSWORD_MAX} characters long`);
  return v;
}

/** lmdb-js returns a commit promise from a put inside a transaction; the transaction's own promise reports the outcome. */
function inTxn(p: unknown): void {
  if (p && typeof (p as Promise<unknown>).catch === 'function') (p as Promise<unknown>).catch(() => undefined);
}

export class DemoUsers {
  /** what a sign-in with an unknown name is checked against, so it takes as long as a wrong password */
  private decoy: Promise<string> | undefined;
  private readonly touching = new Set<string>();
  /** writes in progress, which close() lets finish */
  private readonly writes = new Set<Promise<unknown>>();
  private closed = false;

  private constructor(
    private readonly db: RootDatabase<any, string>,
    private readonly tokens: TokenSigner,
    private readonly opts: DemoUsersOptions,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Opens (or creates) the environment; `onError` hears of background writes that failed. */
  static async open(opts: DemoUsersOptions, onError: (err: unknown) => void = () => undefined): Promise<DemoUsers> {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const db = open<any, string>({ path: opts.dir, encoding: 'json', compression: false });
    let secret = opts.secret;
    if (!secret) {
      // every worker tries; the first write wins and all read the same key
      await db.ifNoExists(SECRET_KEY, () => inTxn(db.put(SECRET_KEY, randomBytes(32).toString('base64url'))));
      await db.flushed;
      secret = db.get(SECRET_KEY) as string | undefined;
      if (!secret) throw new Error(`the demo's token key could not be read back from ${opts.dir}`);
    }
    return new DemoUsers(db, new TokenSigner(Buffer.from(secret), opts.tokenTtlMs), opts, onError);
  }

  /** Creates a user; 400 for a bad name or password, 409 USER_EXISTS when the name (in any case) is taken. */
  async signup(username: unknown, password: unknown): Promise<DemoUser> {
    const name = checkUsername(username);
    const pwd = await hashPassword(checkPassword(password, this.opts.passwordMinLength), this.opts.cost ?? DEFAULT_COST);
    const key = name.toLowerCase();
    const now = Date.now();
    const rec: UserRecord = { name, pwd, signupAt: now, lastActiveAt: now };
    const created = await this.writing(async () => {
      const ok = await this.db.ifNoExists(userKey(key), () => inTxn(this.db.put(userKey(key), rec)));
      // answered once the account would survive a power cut too
      if (ok) await this.db.flushed;
      return ok;
    });
    if (!created) throw new ConflictError('USER_EXISTS', `signup failed: user ${name} exists`);
    return { key, ...view(rec) };
  }

  /** Checks a name and password; 401 LOGIN_FAILED alike for an unknown name and a wrong password. */
  async signin(username: unknown, password: unknown): Promise<{ user: DemoUser; token: string; expiresAt: number }> {
    const name = textParam(username, 'username');
    const pwd = textParam(password, 'password');
    const key = name.toLowerCase();
    const rec = name.length <= USERNAME_MAX ? this.get(key) : undefined;
    this.decoy ??= hashPassword(randomBytes(16).toString('hex'), this.opts.cost ?? DEFAULT_COST);
    const ok = await verifyPassword(pwd, rec?.pwd ?? await this.decoy);
    if (!rec || !ok) throw new SonofsError(401, 'LOGIN_FAILED', 'login failed: wrong username or password');
    const now = Date.now();
    await this.touch(key, now);
    return { user: { key, ...view({ ...rec, lastActiveAt: now }) }, ...this.tokens.issue(key, now) };
  }

  /**
   * The user a token was issued to (its key); 401 when the token is
   * malformed, forged, expired, not for `username` (when given) or its user is gone.
   */
  userOfToken(token: string, username?: string): DemoUser {
    const c = this.tokens.check(token);
    if (!c.ok) throw new UnauthorizedError(c.why === 'expired' ? 'token expired: sign in again' : `token ${c.why}`);
    if (username !== undefined && username.toLowerCase() !== c.user) throw new UnauthorizedError(`token invalid for user ${username}`);
    const rec = this.get(c.user);
    if (!rec) throw new UnauthorizedError('token invalid: no such user');
    const now = Date.now();
    if (now - rec.lastActiveAt > TOUCH_EVERY_MS) this.touch(c.user, now).catch(this.onError);
    return { key: c.user, ...view(rec) };
  }

  /** Lets the writes in progress finish (up to `ms`), then closes; later calls answer 503. */
  async close(ms = 3000): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(this.writes),
      new Promise(resolve => { timer = setTimeout(resolve, ms); }),
    ]);
    clearTimeout(timer);
    await this.db.close();
  }

  private get(key: string): UserRecord | undefined {
    if (this.closed) throw new UnavailableError('SHUTTING_DOWN', 'the server is shutting down: try again');
    return this.db.get(userKey(key));
  }

  private async writing<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new UnavailableError('SHUTTING_DOWN', 'the server is shutting down: try again');
    const p = fn();
    this.writes.add(p);
    try {
      return await p;
    } finally {
      this.writes.delete(p);
    }
  }

  /** Records the user's last activity (only forwards). */
  private async touch(key: string, now: number): Promise<void> {
    if (this.touching.has(key)) return;
    this.touching.add(key);
    try {
      await this.writing(() => this.db.transaction(() => {
        const rec: UserRecord | undefined = this.db.get(userKey(key));
        if (rec && rec.lastActiveAt < now) inTxn(this.db.put(userKey(key), { ...rec, lastActiveAt: now }));
      }));
    } finally {
      this.touching.delete(key);
    }
  }
}

function view(rec: UserRecord): Omit<DemoUser, 'key'> {
  return { name: rec.name, signupAt: rec.signupAt, lastActiveAt: rec.lastActiveAt };
}
