import type { Context } from 'egg';
import { credentialsOf } from '../lib/auth';

/** A 401 says how to authenticate (RFC 9110 §11.6.1, RFC 6750 §3): with a bearer token. */
export default () => async function bearerChallenge(ctx: Context, next: () => Promise<void>) {
  await next();
  if (ctx.status !== 401 || ctx.response.get('WWW-Authenticate')) return;
  const refused = credentialsOf(ctx).token !== undefined ? ', error="invalid_token"' : '';
  ctx.set('WWW-Authenticate', `Bearer realm="sonofs-demo"${refused}`);
};
