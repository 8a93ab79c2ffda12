import { EventEmitter } from 'node:events';
import { NodeConflictError } from './errors';
import { keyspace, Keyspace, LUA_NOW, RedisClient, RedisSubscriber, Script } from './redis';

/** What a node says about itself once, at start. */
export interface NodeIdentity {
  group: number;
  server: number;
  /** how other nodes reach it (its HTTP base URL) */
  url: string;
  /** the data root's own id: the same root is the same node, across restarts */
  instance: string;
  version: string;
  /** ms since the epoch */
  startedAt: number;
}

/** What a node reports with every heartbeat. */
export interface NodeStats {
  /** bytes free for its data root, null when unknown */
  free: number | null;
  total: number | null;
  /** 1-minute load average per core */
  load: number;
  /** how far its copies of its group peers' bundles are (replication/replicator.ts ReplicationReport) */
  replication?: { lagBytes: number; lagMs: number | null; upTo: number | null };
}

export type NodeState = 'starting' | 'up';

export interface NodeEntry extends NodeIdentity, NodeStats {
  state: NodeState;
  /** the TTL its heartbeat renews (ms) */
  ttl: number;
  /** when it leaves the map unless it beats again (Redis clock, ms) */
  expiresAt: number;
}

export type RegistryStatus = 'starting' | 'ok' | 'unreachable' | 'conflict' | 'stopped';

export interface RegistrySnapshot {
  status: RegistryStatus;
  /** local time (ms) the status began */
  since: number;
  /** the last failure, while the status is not ok */
  error: string | null;
  /** Redis's clock at the last read, and the local time of that read */
  redisNow: number;
  readAt: number;
  /** the live nodes, by group then server */
  nodes: NodeEntry[];
}

export interface Logger {
  info(msg: string, ...args: unknown[]): void;
  warn(msg: string, ...args: unknown[]): void;
  error(msg: string | Error, ...args: unknown[]): void;
}

export interface RegistryOptions {
  /** hash tag of every key; nodes of one cluster share it */
  namespace: string;
  self: NodeIdentity;
  stats: () => NodeStats | Promise<NodeStats>;
  /** an entry not renewed this long leaves the map (default 5000 ms) */
  ttlMs?: number;
  /** heartbeat period, also the polling fallback (default ttl / 5) */
  heartbeatMs?: number;
  /** how long one Redis call may take before it counts as failed (default 2000 ms) */
  timeoutMs?: number;
  log?: Logger;
}

// Drops entries whose expiry has passed (a dead node's), by Redis's clock.
const TRIM = `${LUA_NOW}
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, m in ipairs(gone) do redis.call('HDEL', KEYS[1], m) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end`;
const MAP = `{'ok', now, redis.call('HGETALL', KEYS[1]), redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}`;

/** ARGV: id, instance, entry, ttl, channel, message, publish ('1' forces it) */
const BEAT = new Script('sonofs-registry-beat', `${TRIM}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur).instance ~= ARGV[2] then
  return {'conflict', now, cur, redis.call('ZSCORE', KEYS[2], ARGV[1])}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
if ARGV[7] == '1' or not cur or #gone > 0 then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return ${MAP}`, 2);

/** ARGV: channel, message */
const LIST = new Script('sonofs-registry-list', `${TRIM}
if #gone > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return ${MAP}`, 2);

/** ARGV: id, instance, channel, message. Only the entry's own instance removes it. */
const LEAVE = new Script('sonofs-registry-leave', `local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur).instance == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0`, 2);

const quiet: Logger = { info() {}, warn() {}, error() {} };

/** Which changes workers must hear of at once (not a new free-space figure). */
function shape(s: RegistrySnapshot): string {
  return `${s.status}|${s.nodes.map(n => `${n.group}:${n.server}:${n.instance}:${n.state}:${n.url}`).join(',')}`;
}

/**
 * The node's entry in the cluster registry and its view of every live node.
 * An entry is a field of one hash plus its expiry in a sorted set (Redis
 * clock); each heartbeat renews it, drops expired entries and reads the map
 * back in one script, so the heartbeat is also the polling fallback. A change
 * is published on a channel so other nodes read the map at once, and each
 * node re-reads when the next entry it knows is due to expire.
 *
 * Events: 'update' (snapshot, changed: boolean) after every read or status change.
 */
export class ClusterRegistry extends EventEmitter {
  readonly keys: Keyspace;
  readonly ttlMs: number;
  readonly heartbeatMs: number;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly id: string;
  private state: NodeState = 'starting';
  private snap: RegistrySnapshot;
  private lastShape = '';
  private failures = 0;
  /** when this node's heartbeat was last accepted (local clock) */
  private lastBeat = 0;
  private lastFailureLog = 0;
  private beatTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private sub: RedisSubscriber | undefined;
  private running = false;
  private reading: Promise<void> | undefined;
  private readAgain = false;

  constructor(private readonly redis: RedisClient, private readonly opts: RegistryOptions) {
    super();
    this.keys = keyspace(opts.namespace);
    this.ttlMs = opts.ttlMs ?? 5000;
    this.heartbeatMs = opts.heartbeatMs ?? Math.max(100, Math.floor(this.ttlMs / 5));
    if (this.heartbeatMs >= this.ttlMs) throw new Error(`[egg-sonofs] the cluster heartbeat (${this.heartbeatMs} ms) must be shorter than its TTL (${this.ttlMs} ms)`);
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.log = opts.log ?? quiet;
    this.id = `${opts.self.group}:${opts.self.server}`;
    this.snap = { status: 'starting', since: Date.now(), error: null, redisNow: 0, readAt: 0, nodes: [] };
  }

  snapshot(): RegistrySnapshot {
    return this.snap;
  }

  /**
   * Registers the node: refused with NodeConflictError when another live node
   * (another data root) holds the same group and server; an entry left by this
   * node's own previous run is taken over. Fails when Redis does not answer.
   * Then beats until `leave()`.
   */
  /** the last heartbeat sent by the timer or a state change */
  private beating: Promise<unknown> | undefined;

  async join(): Promise<void> {
    const result = await this.beatOnce(true);
    if (result !== 'ok') throw this.conflictError(result);
    this.running = true;
    this.subscribe();
    this.schedule(this.heartbeatMs);
  }

  /** 'up' once the node serves requests; published at once. */
  setState(state: NodeState): void {
    if (state === this.state) return;
    this.state = state;
    if (this.running) this.beatNow(true);
  }

  /** Removes the entry at once (only if it is still this node's) and tells the others. */
  async leave(): Promise<void> {
    const wasRunning = this.running;
    this.stopTimers();
    this.sub?.disconnect();
    this.sub = undefined;
    if (!wasRunning) return;
    // a heartbeat still in flight (its script retried after NOSCRIPT, say) would write the entry back after it
    await this.beating?.catch(() => undefined);
    try {
      await LEAVE.run(this.redis, this.timeoutMs, [ this.keys.nodes, this.keys.expiry ],
        [ this.id, this.opts.self.instance, this.keys.channel, this.opts.self.instance ]);
    } catch (err) {
      this.log.warn('[egg-sonofs] could not remove this node from the cluster registry (it expires within %d ms): %s', this.ttlMs, (err as Error).message);
    }
    this.setStatus('stopped', null);
  }

  /** Stops beating without removing the entry, as a crash would (tests, and an agent that lost its root). */
  abandon(): void {
    this.stopTimers();
    this.sub?.disconnect();
    this.sub = undefined;
  }

  /** Reads the map now (coalesced with a read in flight). */
  refresh(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.readAgain = false;
        try {
          const reply = await LIST.run(this.redis, this.timeoutMs, [ this.keys.nodes, this.keys.expiry ], [ this.keys.channel, this.opts.self.instance ]);
          this.apply(reply, false);
        } catch (err) {
          this.failed(err as Error);
        }
      } while (this.readAgain && this.running);
    })().finally(() => { this.reading = undefined; });
    return this.reading;
  }

  private stopTimers() {
    this.running = false;
    clearTimeout(this.beatTimer);
    clearTimeout(this.expiryTimer);
  }

  private schedule(ms: number) {
    clearTimeout(this.beatTimer);
    if (!this.running) return;
    this.beatTimer = setTimeout(() => this.beatNow(false), ms);
    this.beatTimer.unref();
  }

  private beatNow(publish: boolean) {
    if (!this.running) return;
    clearTimeout(this.beatTimer);
    const beat = this.beating = this.beatOnce(publish);
    beat.then(result => {
      if (result !== 'ok') {
        const err = this.conflictError(result);
        this.failures++;
        this.setStatus('conflict', err.message);
        this.logFailure(err.message);
        return this.schedule(this.heartbeatMs);
      }
      this.schedule(this.heartbeatMs);
    }, (err: Error) => {
      this.failed(err);
      // back off while Redis is away, never longer than an entry lives
      this.schedule(Math.min(this.heartbeatMs * 2 ** Math.min(this.failures - 1, 6), Math.max(this.heartbeatMs, Math.min(this.ttlMs, 10_000))));
    });
  }

  /** One heartbeat: 'ok', or the entry of the node that holds our group and server. */
  private async beatOnce(publish: boolean): Promise<'ok' | { entry: NodeEntry; redisNow: number }> {
    const stats = await this.opts.stats();
    const entry = { ...this.opts.self, ...stats, state: this.state, ttl: this.ttlMs };
    const reply = await BEAT.run(this.redis, this.timeoutMs, [ this.keys.nodes, this.keys.expiry ],
      [ this.id, this.opts.self.instance, JSON.stringify(entry), this.ttlMs, this.keys.channel, this.opts.self.instance, publish ? '1' : '0' ]);
    if (reply[0] === 'conflict') {
      return { entry: { ...JSON.parse(String(reply[2])), expiresAt: Number(reply[3]) }, redisNow: Number(reply[1]) };
    }
    this.apply(reply, true);
    return 'ok';
  }

  private conflictError(c: { entry: NodeEntry; redisNow: number }): NodeConflictError {
    const o = c.entry;
    const ago = c.redisNow - (c.entry.expiresAt - (o.ttl ?? this.ttlMs));
    return new NodeConflictError(`[egg-sonofs] group ${o.group} server ${o.server} is already taken in cluster "${this.opts.namespace}" by the node at ` +
      `${o.url} (data root instance ${o.instance}, started ${new Date(o.startedAt).toISOString()}, last heartbeat ${ago} ms ago). ` +
      'Two nodes cannot share a group and server: give this node another server number (config.sonofs.server, SONOFS_SERVER in the demo), ' +
      `or stop the other node (a crashed node's entry expires ${o.ttl ?? this.ttlMs} ms after its last heartbeat). ` +
      `This node's data root has instance ${this.opts.self.instance}.`);
  }

  private apply(reply: any[], fromBeat: boolean) {
    const redisNow = Number(reply[1]);
    const fields: string[] = reply[2];
    const scores: string[] = reply[3];
    const expiry = new Map<string, number>();
    for (let i = 0; i < scores.length; i += 2) expiry.set(scores[i], Number(scores[i + 1]));
    const nodes: NodeEntry[] = [];
    for (let i = 0; i < fields.length; i += 2) {
      const expiresAt = expiry.get(fields[i]);
      if (expiresAt === undefined || expiresAt <= redisNow) continue;
      try {
        nodes.push({ ...JSON.parse(fields[i + 1]), expiresAt });
      } catch {
        this.log.warn('[egg-sonofs] unreadable cluster registry entry %s', fields[i]);
      }
    }
    nodes.sort((a, b) => a.group - b.group || a.server - b.server);
    // a read alone does not end a conflict: only this node's own heartbeat being accepted does
    const status: RegistryStatus = !fromBeat && this.snap.status === 'conflict' ? 'conflict' : 'ok';
    if (fromBeat && this.failures) {
      this.log.info('[egg-sonofs] cluster registry: registered again after %d failed attempts', this.failures);
      this.failures = 0;
    }
    if (fromBeat) {
      const gap = Date.now() - this.lastBeat;
      // a pause (a stopped process, a stalled event loop) longer than the TTL: others saw this node gone meanwhile
      if (this.lastBeat && gap > this.ttlMs) {
        this.log.warn('[egg-sonofs] cluster registry: this node beat again after %d ms without a heartbeat (TTL %d ms): it had left the cluster map, ' +
          'and a member of its group may have taken over its unfinished uploads; registered again', gap, this.ttlMs);
      }
      this.lastBeat = Date.now();
    }
    const readAt = Date.now();
    const base = this.snap.status === status ? this.snap : { status, since: readAt, error: null };
    this.publishSnapshot({ ...base, redisNow, readAt, nodes });
    this.armExpiry(nodes, redisNow);
  }

  /** Re-read when the next other node's entry is due, so a dead node leaves within its TTL. */
  private armExpiry(nodes: NodeEntry[], redisNow: number) {
    clearTimeout(this.expiryTimer);
    if (!this.running) return;
    const others = nodes.filter(n => n.instance !== this.opts.self.instance);
    if (!others.length) return;
    const due = Math.min(...others.map(n => n.expiresAt)) - redisNow;
    this.expiryTimer = setTimeout(() => void this.refresh(), Math.max(due, 0) + 20);
    this.expiryTimer.unref();
  }

  private failed(err: Error) {
    this.failures++;
    if (this.snap.status !== 'conflict') this.setStatus('unreachable', err.message);
    this.logFailure(`[egg-sonofs] cluster registry: ${err.message} (attempt ${this.failures}; retrying)`);
  }

  /** The first failure of a run and then one every 30 s, not one per heartbeat. */
  private logFailure(msg: string) {
    const now = Date.now();
    if (this.failures > 1 && now - this.lastFailureLog < 30_000) return;
    this.lastFailureLog = now;
    this.log.error(msg);
  }

  private setStatus(status: RegistryStatus, error: string | null) {
    if (this.snap.status === status && this.snap.error === error) return;
    this.publishSnapshot({ ...this.snap, status, error, since: this.snap.status === status ? this.snap.since : Date.now() });
  }

  private publishSnapshot(snap: RegistrySnapshot) {
    this.snap = snap;
    const s = shape(snap);
    const changed = s !== this.lastShape;
    this.lastShape = s;
    this.emit('update', snap, changed);
  }

  private subscribe() {
    const sub = this.sub = this.redis.duplicate();
    const listen = () => {
      sub.subscribe(this.keys.channel).catch(() => undefined);
      // Redis is back (or was restarted empty): register again without waiting for the backoff
      if (this.failures) this.beatNow(false);
    };
    sub.on('ready', listen);
    sub.on('error', () => undefined); // the main client logs connection errors
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.keys.channel) return;
      this.emit('notice', message);
      if (message !== this.opts.self.instance) void this.refresh();
    });
  }
}
