import { MetadataUnavailableError } from '../errors';
import type { RedisClient } from './redis-client';

/** A Redis call of the catalog that takes longer than this fails (config.sonofs.cluster.redisTimeout). */
export const DEFAULT_CALL_TIMEOUT_MS = 2000;

/** Refusals of a call ioredis never sent (offline queue off, or Redis answering that it cannot serve yet). */
const NOT_SENT = /Stream isn't writeable|Cluster isn't ready|None of startup nodes is available|Failed to refresh slots cache|^(LOADING|CLUSTERDOWN|MASTERDOWN|TRYAGAIN)\b/;
/** Failures of a call that may have reached Redis before its answer was lost. */
const LOST = /Connection is closed|Reached the max retries per request/;
const NETWORK = new Set([ 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN' ]);

/** Client states in which a call is worth sending: connected, or one that connects on its first call (lazyConnect). */
const USABLE = new Set([ 'ready', 'wait' ]);

/** What an ioredis error means for the catalog: Redis unavailable (typed), or undefined for any other error. */
export function unavailableFrom(err: unknown): MetadataUnavailableError | undefined {
  if (err instanceof MetadataUnavailableError) return err;
  const e = err as Error & { code?: string; name?: string };
  const message = String(e?.message ?? '');
  if (NOT_SENT.test(message)) return new MetadataUnavailableError(message);
  if (e?.name === 'MaxRetriesPerRequestError' || LOST.test(message) || NETWORK.has(e?.code ?? '')) {
    return new MetadataUnavailableError(message, true);
  }
  return undefined;
}

/**
 * The client as the catalog calls it: every command fails with
 * MetadataUnavailableError at once while the client is not connected, when
 * ioredis gives up on it, or after `timeoutMs` without an answer, whatever
 * retry and offline-queue settings the app gave its client. So no request
 * waits on an absent Redis longer than that. (A timed-out command may still
 * run later in Redis: the error says so with `maybeApplied`.)
 */
export function guardRedis(client: RedisClient, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): RedisClient {
  if (!(timeoutMs > 0)) throw new RangeError(`the catalog's Redis call timeout must be a positive number of ms, got ${timeoutMs}`);
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'defineCommand') return value;
      return (...args: unknown[]) => guarded(target, () => value.apply(target, args), timeoutMs);
    },
  });
}

function guarded(client: RedisClient, call: () => unknown, timeoutMs: number): unknown {
  const status = (client as { status?: string }).status;
  if (status !== undefined && !USABLE.has(status)) return Promise.reject(new MetadataUnavailableError(`the client is ${status}`));
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    throw unavailableFrom(err) ?? err;
  }
  if (!result || typeof (result as Promise<unknown>).then !== 'function') return result;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new MetadataUnavailableError(`no answer within ${timeoutMs} ms`, true)), timeoutMs);
    (result as Promise<unknown>).then(v => {
      clearTimeout(timer);
      resolve(v);
    }, err => {
      clearTimeout(timer);
      reject(unavailableFrom(err) ?? err);
    });
  });
}
