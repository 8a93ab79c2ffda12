import { createHash } from 'node:crypto';

/**
 * The part of an ioredis client (4 or 5; standalone, Sentinel or Cluster)
 * the cluster engine uses. It never needs more, so any compatible client fits.
 */
export interface RedisClient {
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
  evalsha(sha1: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
  /** a second connection with the same settings, for Pub/Sub */
  duplicate(): RedisSubscriber;
}

export interface RedisSubscriber {
  subscribe(channel: string): Promise<unknown>;
  on(event: string, listener: (...args: any[]) => void): unknown;
  disconnect(): void;
}

/** Rejects when `promise` has not settled after `ms` (the command itself may still run). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([ promise, timeout ]).finally(() => clearTimeout(timer));
}

/** A Lua script run by its sha1, sent whole only when the server does not have it cached yet. */
export class Script {
  private readonly sha1: string;

  constructor(readonly name: string, private readonly source: string, private readonly numKeys: number) {
    this.sha1 = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisClient, timeoutMs: number, keys: string[], args: Array<string | number>): Promise<any> {
    if (keys.length !== this.numKeys) throw new Error(`script ${this.name} takes ${this.numKeys} keys`);
    try {
      return await withTimeout(redis.evalsha(this.sha1, this.numKeys, ...keys, ...args), timeoutMs, this.name);
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error).message)) throw err;
      return withTimeout(redis.eval(this.source, this.numKeys, ...keys, ...args), timeoutMs, this.name);
    }
  }
}

/** Redis's own clock in ms, read inside a script: every node of the cluster judges expiry by one clock. */
export const LUA_NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Every key of one cluster shares the hash tag `{namespace}`, so all of them
 * sit in one slot of a Redis Cluster and one script may touch several.
 */
export function keyspace(namespace: string) {
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(namespace)) {
    throw new Error(`[egg-sonofs] cluster namespace must be 1-64 characters of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(namespace)}`);
  }
  const tag = `{${namespace}}`;
  return {
    /** hash: "group:server" -> entry JSON */
    nodes: `sonofs:${tag}:nodes`,
    /** sorted set: "group:server" scored by expiry (Redis ms) */
    expiry: `sonofs:${tag}:expiry`,
    /** Pub/Sub channel: the map changed (a node joined, left, expired, changed state; a lease was let go) */
    channel: `sonofs:${tag}:changed`,
    lease: (name: string) => `sonofs:${tag}:lease:${name}`,
    fence: (name: string) => `sonofs:${tag}:fence:${name}`,
  };
}
export type Keyspace = ReturnType<typeof keyspace>;
