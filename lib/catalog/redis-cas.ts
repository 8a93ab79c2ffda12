import { RedisClient, callScript } from './redis-client';

/**
 * One content's blob and one user's link to it, changed together only if
 * both still hold what the caller read: the commit step of every catalog
 * mutation on Redis, which has no transaction a record write could run in
 * (types.ts). Keys share their hash tag, so this works on Redis Cluster.
 *
 * KEYS: blob bucket (hash), the user's links (hash), the user's time index
 * (sorted set), the catalog's seq, the replaying node's mark. ARGV: sha1 (the
 * field and member), then for the blob and the link: what it must hold (''
 * absent, '*' anything) and what it becomes ('' deleted, '*' unchanged); then
 * the time index: '' as is, '-' removed, else the new score; then the seq of
 * the step's record ('' none): the node's mark and the catalog's seq are
 * raised to it, so a replay skips what is in, and a seq taken later is newer.
 */
const LUA = `
local sha1 = ARGV[1]
local blob = redis.call('HGET', KEYS[1], sha1) or ''
if ARGV[2] ~= '*' and blob ~= ARGV[2] then return 0 end
local link = redis.call('HGET', KEYS[2], sha1) or ''
if ARGV[4] ~= '*' and link ~= ARGV[4] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], sha1) elseif ARGV[3] ~= '*' then redis.call('HSET', KEYS[1], sha1, ARGV[3]) end
if ARGV[5] == '' then redis.call('HDEL', KEYS[2], sha1) elseif ARGV[5] ~= '*' then redis.call('HSET', KEYS[2], sha1, ARGV[5]) end
if ARGV[6] == '-' then redis.call('ZREM', KEYS[3], sha1) elseif ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], ARGV[6], sha1) end
if ARGV[7] ~= '' then
  local seq = tonumber(ARGV[7])
  if tonumber(redis.call('GET', KEYS[5]) or '0') < seq then redis.call('SET', KEYS[5], ARGV[7]) end
  if tonumber(redis.call('GET', KEYS[4]) or '0') < seq then redis.call('SET', KEYS[4], ARGV[7]) end
end
return 1
`;

const NAME = 'sonofsCatalogCas';

/** A value expected or written: bytes, absent, or (ANY / KEEP) not looked at. */
export type CasValue = Buffer | undefined | typeof ANY;
export const ANY = Symbol('any');
export const KEEP = ANY;

export interface CasKeys {
  blobs: Buffer;
  links: Buffer;
  times: Buffer;
  seq: Buffer;
  mark: Buffer;
}

export interface CasStep {
  sha1: Buffer;
  expectBlob: CasValue;
  expectLink: CasValue;
  blob: CasValue;
  link: CasValue;
  /** the link's time index entry: its new `at`, null to remove it, undefined to leave it */
  at?: number | null;
  /** the seq of the record this step commits or replays */
  seq?: number;
}

const arg = (v: CasValue, absent: string): Buffer | string => (v === ANY ? '*' : v ?? absent);

export function defineCas(client: RedisClient): void {
  client.defineCommand(NAME, { numberOfKeys: 5, lua: LUA });
}

/** True when the step was applied; false when the blob or the link changed since they were read. */
export async function cas(client: RedisClient, keys: CasKeys, s: CasStep): Promise<boolean> {
  const done = await callScript<number>(client, NAME, [
    keys.blobs, keys.links, keys.times, keys.seq, keys.mark,
    s.sha1, arg(s.expectBlob, ''), arg(s.blob, ''), arg(s.expectLink, ''), arg(s.link, ''),
    s.at === undefined ? '' : s.at === null ? '-' : String(s.at), s.seq === undefined ? '' : String(s.seq),
  ]);
  return done === 1;
}
