/**
 * The part of an ioredis client (4 through egg-redis, or 5; standalone,
 * Sentinel or Cluster) that the Redis backends use. The engine takes the
 * app's client and never opens or closes one.
 */
export interface RedisClient {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
  get(key: string | Buffer): Promise<string | null>;
  set(key: string | Buffer, value: string | Buffer): Promise<unknown>;
  del(...keys: Array<string | Buffer>): Promise<number>;
  exists(...keys: Array<string | Buffer>): Promise<number>;
  incr(key: string | Buffer): Promise<number>;
  hlen(key: string | Buffer): Promise<number>;
  hgetBuffer(key: string | Buffer, field: string | Buffer): Promise<Buffer | null>;
  hscanBuffer(key: string | Buffer, cursor: string, ...options: Array<string | number>): Promise<[Buffer, Buffer[]]>;
  zrevrangeBuffer(key: string | Buffer, start: number, stop: number): Promise<Buffer[]>;
  zrangebyscoreBuffer(key: string | Buffer, min: string, max: string, ...options: Array<string | number>): Promise<Buffer[]>;
  zrangebylexBuffer(key: string | Buffer, min: string | Buffer, max: string | Buffer, ...options: Array<string | number>): Promise<Buffer[]>;
}

/** Calls a script registered with defineCommand (ioredis adds it as a method, with EVALSHA and a NOSCRIPT fallback). */
export function callScript<T>(client: RedisClient, name: string, args: Array<string | Buffer | number>): Promise<T> {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => Promise<T>>)[name];
  return fn.apply(client, args);
}

/**
 * Runs a compare-and-set `attempt` until it applies (answers { value }). After
 * each loss to another writer it waits a random time that doubles up to 100 ms,
 * so writers contending for one key spread out instead of retrying in step.
 */
export async function retryCompareAndSet<T>(attempt: () => Promise<{ value: T } | undefined>, giveUp: () => Error, tries = 50): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const done = await attempt();
    if (done) return done.value;
    await new Promise(resolve => setTimeout(resolve, Math.random() * Math.min(100, 2 ** i)));
  }
  throw giveUp();
}
