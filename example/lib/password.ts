import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password hashes for the demo's users: scrypt with a random 16-byte salt,
 * stored as `scrypt$<log2 N>$<r>$<p>$<salt>$<key>` (base64url), so the cost
 * can be raised later without breaking the hashes already stored. Never the
 * course's sha1(password + fixed salt), which a GPU reverses by the billion.
 */

export interface ScryptCost {
  /** log2 of scrypt's N (CPU and memory cost) */
  logN: number;
  r: number;
  p: number;
}

/** 32 MiB and about 0.1 s per hash on one core: a guess costs an attacker the same. */
export const DEFAULT_COST: ScryptCost = { logN: 15, r: 8, p: 1 };

const KEY_BYTES = 32;

function derive(password: string, salt: Buffer, c: ScryptCost): Promise<Buffer> {
  const N = 2 ** c.logN;
  // scrypt needs 128 * N * r bytes; node refuses above maxmem (32 MiB by default)
  const maxmem = 128 * N * c.r * c.p + 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, KEY_BYTES, { N, r: c.r, p: c.p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string, cost: ScryptCost = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost);
  return [ 'scrypt', cost.logN, cost.r, cost.p, salt.toString('base64url'), key.toString('base64url') ].join('$');
}

/** True when `password` is the one `stored` was made from; false for any other password or a hash it cannot read. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [ kind, logN, r, p, salt, key ] = stored.split('$');
  if (kind !== 'scrypt' || !key) return false;
  const want = Buffer.from(key, 'base64url');
  const got = await derive(password, Buffer.from(salt, 'base64url'), { logN: Number(logN), r: Number(r), p: Number(p) });
  return got.length === want.length && timingSafeEqual(got, want);
}
