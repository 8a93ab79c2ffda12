import { keyspace, LUA_NOW, RedisClient, Script } from './redis';
import type { Logger } from './registry';

export interface LeaseOptions {
  /** hash tag shared with the registry's keys */
  namespace: string;
  /** which duty the lease is for */
  name: string;
  /** who asks: unique per process run (a restarted node is a new owner) */
  owner: string;
  /** the lease lapses this long after the holder's last renewal (default 5000 ms) */
  ttlMs?: number;
  /** renewal period, also how often a standby tries to take it (default ttl / 3) */
  renewMs?: number;
  /** how long one Redis call may take (default 2000 ms) */
  timeoutMs?: number;
  /** published on release, so standbys try at once */
  channel?: string;
  log?: Logger;
}

export interface LeaseHolder {
  owner: string;
  /** the fencing token of the holder's acquisition */
  token: number;
  /** ms until it lapses unless renewed */
  ttl: number;
}

/**
 * ARGV: owner, ttl. SET NX PX, and on success the next fencing token. A
 * missing counter (a new cluster, or a Redis that lost its data) starts at
 * Redis's clock in ms, so tokens keep growing across such a loss as long as
 * fewer than one lease is taken per ms.
 */
const ACQUIRE = new Script('sonofs-lease-acquire', `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    ${LUA_NOW}
    redis.call('SET', KEYS[2], now)
  end
  return redis.call('INCR', KEYS[2])
end
return false`, 2);

/** ARGV: owner, ttl. Only the owner renews. */
const RENEW = new Script('sonofs-lease-renew', `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`, 1);

/** ARGV: owner, channel, message. Only the owner releases. */
const RELEASE = new Script('sonofs-lease-release', `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
  return 1
end
return 0`, 1);

const HOLDER = new Script('sonofs-lease-holder', `return { redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('PTTL', KEYS[1]) }`, 2);

/**
 * One holder of a duty across the cluster: `SET NX PX`, renewed and released
 * by scripts that check the owner, with a fencing token (`INCR`) per
 * acquisition that grows with every new holder. The holder counts its lease
 * as lost (onLose) a tenth of the TTL before Redis would let another node
 * take it, when it could not renew in time; a holder that was paused longer
 * than that may still act late, which is what the token is for: whatever
 * receives the duty's writes keeps the highest token seen and refuses lower ones.
 */
export class ClusterLease {
  readonly ttlMs: number;
  readonly renewMs: number;
  private readonly timeoutMs: number;
  private readonly keys: { lease: string; fence: string };
  private tokenHeld: number | undefined;
  private validUntil = 0;
  private validity: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private running = false;
  private lastError = 0;
  private readonly acquired: Array<(token: number) => void> = [];
  private readonly lost: Array<(reason: string) => void> = [];

  constructor(private readonly redis: RedisClient, private readonly opts: LeaseOptions) {
    const ks = keyspace(opts.namespace);
    this.keys = { lease: ks.lease(opts.name), fence: ks.fence(opts.name) };
    this.ttlMs = opts.ttlMs ?? 5000;
    this.renewMs = opts.renewMs ?? Math.max(50, Math.floor(this.ttlMs / 3));
    if (this.renewMs >= this.ttlMs * 0.9) throw new Error(`[egg-sonofs] lease renewal (${this.renewMs} ms) must be well under its TTL (${this.ttlMs} ms)`);
    this.timeoutMs = Math.min(opts.timeoutMs ?? 2000, this.renewMs);
  }

  /** Called with the fencing token each time this process becomes the holder. */
  onAcquire(fn: (token: number) => void): this {
    this.acquired.push(fn);
    return this;
  }

  /** Called when this process stops being the holder (renewal failed, taken over, or stop()). Stop the duty at once. */
  onLose(fn: (reason: string) => void): this {
    this.lost.push(fn);
    return this;
  }

  /** The fencing token while this process holds the lease. */
  get token(): number | undefined {
    return this.tokenHeld;
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.tick();
    return this;
  }

  /** Try now (a holder let go). */
  poke(): void {
    if (this.running && this.tokenHeld === undefined) this.tick();
  }

  /** Stops trying and lets go of the lease if held, so a standby takes it at once. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    if (this.tokenHeld === undefined) return;
    try {
      await RELEASE.run(this.redis, this.timeoutMs, [ this.keys.lease ], [ this.opts.owner, this.opts.channel ?? '', `lease:${this.opts.name}` ]);
    } catch (err) {
      this.opts.log?.warn('[egg-sonofs] could not release the %s lease (it lapses within %d ms): %s', this.opts.name, this.ttlMs, (err as Error).message);
    }
    this.lose('stopped');
  }

  /** Stops without releasing, as a crashed holder would (tests). */
  abandon(): void {
    this.running = false;
    clearTimeout(this.timer);
    clearTimeout(this.validity);
  }

  /** Who holds the lease now, by Redis. */
  async holder(): Promise<LeaseHolder | null> {
    const [ owner, token, ttl ] = await HOLDER.run(this.redis, this.timeoutMs, [ this.keys.lease, this.keys.fence ], []);
    return owner ? { owner: String(owner), token: Number(token), ttl: Number(ttl) } : null;
  }

  private tick() {
    if (this.busy || !this.running) return;
    this.busy = true;
    clearTimeout(this.timer);
    const started = Date.now();
    this.attempt(started)
      .catch(err => {
        // no answer: keep the duty only while the last renewal is valid (the validity timer ends it)
        if (Date.now() - this.lastError > 30_000) {
          this.lastError = Date.now();
          this.opts.log?.warn('[egg-sonofs] %s lease: %s', this.opts.name, (err as Error).message);
        }
      })
      .finally(() => {
        this.busy = false;
        if (!this.running) return;
        this.timer = setTimeout(() => this.tick(), this.renewMs);
        this.timer.unref();
      });
  }

  private async attempt(started: number) {
    if (this.tokenHeld !== undefined) {
      const renewed = await RENEW.run(this.redis, this.timeoutMs, [ this.keys.lease ], [ this.opts.owner, this.ttlMs ]);
      if (Number(renewed) !== 1) this.lose('another node holds it now');
      else if (this.tokenHeld !== undefined) this.valid(started); // not lost meanwhile
      return;
    }
    const token = await ACQUIRE.run(this.redis, this.timeoutMs, [ this.keys.lease, this.keys.fence ], [ this.opts.owner, this.ttlMs ]);
    if (token === null || token === undefined) return;
    if (!this.running) { // stopped while asking: give it back
      await RELEASE.run(this.redis, this.timeoutMs, [ this.keys.lease ], [ this.opts.owner, this.opts.channel ?? '', `lease:${this.opts.name}` ]);
      return;
    }
    this.tokenHeld = Number(token);
    this.valid(started);
    for (const fn of this.acquired) fn(this.tokenHeld);
  }

  /** Valid until a tenth of the TTL before Redis lets it lapse, counted from before the call was sent. */
  private valid(started: number) {
    this.validUntil = started + Math.floor(this.ttlMs * 0.9);
    clearTimeout(this.validity);
    this.validity = setTimeout(() => this.lose('could not renew it in time'), Math.max(this.validUntil - Date.now(), 0));
    this.validity.unref();
  }

  private lose(reason: string) {
    clearTimeout(this.validity);
    if (this.tokenHeld === undefined) return;
    this.tokenHeld = undefined;
    for (const fn of this.lost) fn(reason);
  }
}
