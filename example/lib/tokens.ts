import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The demo's sign-in tokens: `<user>.<expiry ms>.<HMAC-SHA256 of both>`,
 * URL-safe, so the course's clients can pass them in a query string and
 * other clients as `Authorization: Bearer`. Nothing is stored per token: any
 * worker checks one with the secret alone, and a token stops working at its
 * expiry (the course's tokens never expired, and were checked only for
 * their length).
 */

export type TokenCheck =
  | { ok: true; user: string; expiresAt: number }
  | { ok: false; why: 'malformed' | 'invalid' | 'expired' };

/** Longer is not a token of ours: refused before any work. */
const MAX_TOKEN_LENGTH = 256;

export class TokenSigner {
  constructor(private readonly secret: Buffer, private readonly ttlMs: number) {}

  /** A token for `user` (a user key: URL-safe characters, see users.ts) valid for the configured time. */
  issue(user: string, now = Date.now()): { token: string; expiresAt: number } {
    const expiresAt = now + this.ttlMs;
    return { token: `${user}.${expiresAt}.${this.mac(user, expiresAt).toString('base64url')}`, expiresAt };
  }

  check(token: string, now = Date.now()): TokenCheck {
    if (token.length > MAX_TOKEN_LENGTH) return { ok: false, why: 'malformed' };
    // the user may contain dots, the expiry and the mac cannot
    const m = /^(.+)\.(\d{1,15})\.([\w-]{43})$/.exec(token);
    if (!m) return { ok: false, why: 'malformed' };
    const [ , user, exp, mac ] = m;
    const expiresAt = Number(exp);
    const given = Buffer.from(mac, 'base64url');
    const want = this.mac(user, expiresAt);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return { ok: false, why: 'invalid' };
    if (now >= expiresAt) return { ok: false, why: 'expired' };
    return { ok: true, user, expiresAt };
  }

  private mac(user: string, expiresAt: number): Buffer {
    return createHmac('sha256', this.secret).update(`sonofs-demo-token\n${user}\n${expiresAt}`).digest();
  }
}
