import type { ByteRange, LockMode, Session, SessionStore, UpdateAlso } from './types';
import { LockRecord, releaseAskedOf, releasedLock, renewedLock, takeLock } from './lock-record';
import { Liveness } from '../liveness';
import { UnavailableError } from '../errors';
import type { RedisClient } from '../catalog/redis-client';
import { callScript, retryCompareAndSet } from '../catalog/redis-client';

/**
 * One step on a session, its lock and its lookup keys, applied only if the
 * session and the lock still hold what the caller read ('' absent, '*'
 * anything). New values: '' deletes, '*' keeps. Then the session's line in
 * its node's expiry index ('' as is, '-' removed, else the new score); lookup
 * keys dropped where they still point at the session (or, without an id,
 * whatever they point at); lookup keys set to point at it.
 * KEYS: session, lock, expiry index, lookup hash, lookup index (sorted set),
 * the expiry index of the node a session moves away from (the same as the
 * third when it stays), which loses its line.
 * ARGV: expect session, new session, expect lock, new lock, expiry, id,
 * n, n keys to drop, m, m keys to set.
 */
const LUA = `
local s = redis.call('GET', KEYS[1]) or ''
if ARGV[1] ~= '*' and s ~= ARGV[1] then return 0 end
local l = redis.call('GET', KEYS[2]) or ''
if ARGV[3] ~= '*' and l ~= ARGV[3] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) elseif ARGV[2] ~= '*' then redis.call('SET', KEYS[1], ARGV[2]) end
if ARGV[4] == '' then redis.call('DEL', KEYS[2]) elseif ARGV[4] ~= '*' then redis.call('SET', KEYS[2], ARGV[4]) end
local id = ARGV[6]
if ARGV[5] == '-' then redis.call('ZREM', KEYS[3], id) elseif ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], ARGV[5], id) end
if KEYS[6] ~= KEYS[3] then redis.call('ZREM', KEYS[6], id) end
local i = 8
for _ = 1, tonumber(ARGV[7]) do
  local k = ARGV[i]
  i = i + 1
  if id == '' or redis.call('HGET', KEYS[4], k) == id then
    redis.call('HDEL', KEYS[4], k)
    redis.call('ZREM', KEYS[5], k)
  end
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  redis.call('HSET', KEYS[4], ARGV[i], id)
  redis.call('ZADD', KEYS[5], 0, ARGV[i])
  i = i + 1
end
return 1
`;

const SCRIPT = 'sonofsSessionStep';
const ANY = '*';

interface Step {
  expectSession?: string;
  session?: string;
  expectLock?: string;
  lock?: string;
  /** the expiry index of this session's node: its new expiry, or null to remove it */
  expires?: number | null;
  node?: string;
  /** the node whose expiry index the session leaves (it moved to `node`: another node took the upload over) */
  leaving?: string;
  dropKeys?: string[];
  setKeys?: string[];
}

export interface RedisSessionOptions {
  /** what every key begins with, in a hash tag (default 'sonofs'); the catalog's namespace may be the same */
  namespace?: string;
  liveness: Liveness;
}

/**
 * Upload sessions on Redis (cluster mode), so an upload started on one node
 * can be continued on another. Keys, under one hash tag so a step's keys are
 * in one slot:
 *   {ns:sessions}:s:<id>      the session (JSON)
 *   {ns:sessions}:l:<id>      its lock (lock-record.ts, JSON)
 *   {ns:sessions}:e:<node>    expiry index of the sessions whose bytes a node holds ('-': none)
 *   {ns:sessions}:k           lookup keys → session id (hash), and :ki the same keys sorted (prefix queries)
 * Each change reads, computes, then applies with one compare-and-set script,
 * starting over when another got there first.
 */
export class RedisSessionStore implements SessionStore {
  private readonly tag: string;
  private readonly liveness: Liveness;

  constructor(private readonly redis: RedisClient, readonly node: string, opts: RedisSessionOptions) {
    this.tag = `{${opts.namespace ?? 'sonofs'}:sessions}`;
    this.liveness = opts.liveness;
    redis.defineCommand(SCRIPT, { numberOfKeys: 6, lua: LUA });
  }

  async get(id: string): Promise<Session | undefined> {
    const v = await this.redis.get(this.key('s', id));
    return v === null ? undefined : JSON.parse(v);
  }

  async put(s: Session, keys: string[] = []): Promise<void> {
    await this.step(s.id, { expectSession: ANY, session: JSON.stringify(s), expires: s.expires, node: s.node, setKeys: keys });
  }

  async update(id: string, fn: (s: Session) => Session | undefined, also: UpdateAlso = {}): Promise<Session | undefined> {
    return this.retry(async () => {
      const [ sv, lv ] = await Promise.all([ this.redis.get(this.key('s', id)), this.redis.get(this.key('l', id)) ]);
      const lock = also.unlock ? releasedLock(parse<LockRecord>(lv), also.unlock) : undefined;
      const lockStep = lock === undefined ? {} : { expectLock: lv ?? '', lock: lock === null ? '' : JSON.stringify(lock) };
      if (sv === null) {
        // no session: its lock still goes
        return await this.step(id, { expectSession: '', ...lockStep }) ? { value: undefined } : undefined;
      }
      const cur: Session = JSON.parse(sv);
      const next = fn(cur);
      const moved = next !== undefined && next.node !== cur.node;
      const ok = await this.step(id, {
        expectSession: sv, ...lockStep, dropKeys: also.dropKeys, node: moved ? next.node : cur.node, leaving: moved ? cur.node ?? '-' : undefined,
        ...(next ? { session: JSON.stringify(next), expires: next.expires } : {}),
      });
      return ok ? { value: next ?? cur } : undefined;
    });
  }

  async remove(id: string): Promise<void> {
    const cur = await this.get(id);
    await this.step(id, { expectSession: ANY, session: '', expectLock: ANY, lock: '', expires: null, node: cur?.node });
  }

  async getKey(key: string): Promise<string | undefined> {
    const v = await this.redis.hgetBuffer(this.key('k'), key);
    return v === null ? undefined : v.toString();
  }

  async setKey(key: string, id: string | undefined): Promise<void> {
    await this.step(id ?? '', id === undefined ? { expectSession: ANY, dropKeys: [ key ] } : { expectSession: ANY, setKeys: [ key ] });
  }

  async countKeys(prefix: string, limit: number): Promise<number> {
    return (await this.keysStartingWith(prefix, limit)).length;
  }

  async keys(prefix: string, limit: number): Promise<Array<{ key: string; id: string }>> {
    const keys = await this.keysStartingWith(prefix, limit);
    const ids = await Promise.all(keys.map(k => this.getKey(k)));
    return keys.flatMap((key, i) => (ids[i] === undefined ? [] : [ { key, id: ids[i]! } ]));
  }

  async expired(now: number, limit: number): Promise<string[]> {
    // this node's sessions and those holding no bytes, oldest first
    const [ mine, none ] = await Promise.all([ this.node, '-' ].map(n =>
      this.redis.zrangebyscoreBuffer(this.key('e', n), '-inf', `(${now}`, 'WITHSCORES', 'LIMIT', 0, limit)));
    const all = [ ...pairs(mine), ...pairs(none) ].sort((a, b) => a.score - b.score);
    return all.slice(0, limit).map(p => p.id);
  }

  async tryLock(id: string, owner: string, mode: LockMode, ttlMs: number, askRelease: boolean, range?: ByteRange): Promise<boolean> {
    return this.retry(async () => {
      const lv = await this.redis.get(this.key('l', id));
      const cx = { node: this.node, liveness: this.liveness, now: Date.now() };
      const { taken, next } = takeLock(parse<LockRecord>(lv), cx, owner, mode, ttlMs, askRelease, range);
      if (!next) return { value: taken };
      return await this.step(id, { expectSession: ANY, expectLock: lv ?? '', lock: JSON.stringify(next) }) ? { value: taken } : undefined;
    });
  }

  async renewLock(id: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.retry(async () => {
      const lv = await this.redis.get(this.key('l', id));
      const next = renewedLock(parse<LockRecord>(lv), owner, Date.now() + ttlMs);
      if (!next) return { value: false };
      return await this.step(id, { expectSession: ANY, expectLock: lv ?? '', lock: JSON.stringify(next) }) ? { value: true } : undefined;
    });
  }

  async releaseAsked(id: string, owner: string): Promise<boolean> {
    return releaseAskedOf(parse<LockRecord>(await this.redis.get(this.key('l', id))), owner);
  }

  async unlock(id: string, owner: string): Promise<void> {
    await this.retry(async () => {
      const lv = await this.redis.get(this.key('l', id));
      const next = releasedLock(parse<LockRecord>(lv), owner);
      if (next === undefined) return { value: undefined };
      return await this.step(id, { expectSession: ANY, expectLock: lv ?? '', lock: next === null ? '' : JSON.stringify(next) }) ? { value: undefined } : undefined;
    });
  }

  async durable(): Promise<void> {
    // What sessions lose to a Redis crash, a client sends again (lmdb-sessions.ts says what each loss costs).
  }

  async close(): Promise<void> {
    // The client is the app's (egg-redis).
  }

  private async keysStartingWith(prefix: string, limit: number): Promise<string[]> {
    // keys sort by their UTF-8 bytes, which never hold 0xFF: those starting with prefix sort below prefix + 0xFF
    const p = Buffer.from(prefix);
    const keys = await this.redis.zrangebylexBuffer(this.key('ki'), Buffer.concat([ Buffer.from('['), p ]), Buffer.concat([ Buffer.from('('), p, Buffer.from([ 0xff ]) ]), 'LIMIT', 0, limit);
    return keys.map(k => k.toString());
  }

  private step(id: string, s: Step): Promise<boolean> {
    const dropKeys = s.dropKeys ?? [];
    const setKeys = s.setKeys ?? [];
    const expiry = s.expires === undefined ? '' : s.expires === null ? '-' : String(s.expires);
    return callScript<number>(this.redis, SCRIPT, [
      this.key('s', id), this.key('l', id), this.key('e', s.node ?? '-'), this.key('k'), this.key('ki'), this.key('e', s.leaving ?? s.node ?? '-'),
      s.expectSession ?? ANY, s.session ?? ANY, s.expectLock ?? ANY, s.lock ?? ANY, expiry, id,
      dropKeys.length, ...dropKeys, setKeys.length, ...setKeys,
    ]).then(done => done === 1);
  }

  /** Runs an attempt until it applies (answers { value }) or keeps losing to other writers. */
  private retry<T>(attempt: () => Promise<{ value: T } | undefined>): Promise<T> {
    return retryCompareAndSet(attempt, () => new UnavailableError('SESSION_CONTENDED', 'the upload kept changing under this request; send it again'));
  }

  private key(kind: string, part?: string): string {
    return part === undefined ? `${this.tag}:${kind}` : `${this.tag}:${kind}:${part}`;
  }
}

function parse<T>(v: string | null): T | undefined {
  return v === null ? undefined : JSON.parse(v);
}

/** ZRANGEBYSCORE ... WITHSCORES as ids and scores. */
function pairs(flat: Buffer[]): Array<{ id: string; score: number }> {
  const out = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i].toString(), score: Number(flat[i + 1].toString()) });
  return out;
}
