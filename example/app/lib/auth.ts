import type { Application, Context } from 'egg';
import { UnauthorizedError } from '../../../lib';
import { ANONYMOUS, DemoUser, DemoUsers } from '../../lib/users';

/** `config.demoUsers` (config/config.default.ts maps the environment onto it). */
export interface DemoUsersConfig {
  /**
   * `optional`: a request without credentials is the shared user `anonymous`;
   * `required`: it gets 401. A request with credentials that do not hold gets 401 in both.
   */
  mode: 'optional' | 'required';
  /** how long a token from /user/signin is valid (ms) */
  tokenTtl: number;
  /** HMAC key of the tokens; unset: a random one kept in `dir` */
  secret?: string;
  /** the accounts' LMDB environment */
  dir: string;
  passwordMinLength: number;
}

const USERS = Symbol('demo#users');

export function demoUsersConfig(app: Application): DemoUsersConfig {
  return (app.config as any).demoUsers;
}

export function setDemoUsers(app: Application, users: DemoUsers): void {
  (app as any)[USERS] = users;
}

export function demoUsers(app: Application): DemoUsers {
  const users = (app as any)[USERS] as DemoUsers | undefined;
  if (!users) throw new Error('the demo users are not open yet');
  return users;
}

/** A parameter from the query string or a parsed form (urlencoded or JSON), as the course's r.Form. */
export function param(ctx: Context, name: string): unknown {
  const body = (ctx.request as any).body;
  return ctx.query[name] ?? (body && typeof body === 'object' ? body[name] : undefined);
}

/**
 * The token of a request: `Authorization: Bearer <token>` (the CLI, the
 * upload page) or `token` in the query or form (the course's clients, with
 * `username`). Empty values count as absent.
 */
export function credentialsOf(ctx: Context): { token?: unknown; username?: unknown } {
  const bearer = /^Bearer +(\S+) *$/i.exec(ctx.get('Authorization'))?.[1];
  const given = (v: unknown) => (v === '' ? undefined : v);
  return { token: bearer ?? given(param(ctx, 'token')), username: given(param(ctx, 'username')) };
}

/**
 * The signed-in user of a request, or undefined when it carries no
 * credentials at all. Credentials that do not hold (a bad or expired token,
 * a username without a token or with another user's) are a 401, never
 * anonymous: the client meant to act as someone.
 */
export function signedInUser(ctx: Context): DemoUser | undefined {
  const { token, username } = credentialsOf(ctx);
  if (token === undefined && username === undefined) return undefined;
  if (token === undefined) throw new UnauthorizedError('token required: sign in at POST /user/signin and send its Token');
  if (typeof token !== 'string') throw new UnauthorizedError('token must be given once, as text');
  if (username !== undefined && typeof username !== 'string') throw new UnauthorizedError('username must be given once, as text');
  return demoUsers(ctx.app).userOfToken(token, username as string | undefined);
}

/**
 * The demo's `config.sonofs.authenticate`: the store's user of a request is
 * its signed-in user's key (the name in lower case), or `anonymous` when the
 * demo allows requests without credentials.
 */
export function authenticate(ctx: Context): string {
  const user = signedInUser(ctx);
  if (user) return user.key;
  if (demoUsersConfig(ctx.app).mode === 'optional') return ANONYMOUS;
  throw new UnauthorizedError('sign in first: send Authorization: Bearer <Token from POST /user/signin>, or username and token');
}
