import path from 'node:path';
import { CliError, EXIT, usage } from '../errors';
import { printJson } from '../format';

export interface ReindexFlags {
  root: string[];
  redis?: string;
  namespace: string;
  verifyData: boolean;
  json?: boolean;
}

/** ioredis as egg-redis brings it (the client the nodes use). */
function ioredis(): any {
  return require(require.resolve('ioredis', { paths: [ path.dirname(require.resolve('egg-redis/package.json')) ] }));
}

/** A client of `url`, not connected yet: redis://[:password@]host:port[/db] for one server, a comma list of them for a Redis Cluster. */
function clientOf(url: string): any {
  const parts = url.split(',').map(s => s.trim()).filter(Boolean);
  if (!parts.length || parts.some(p => !/^rediss?:\/\/[^/]/.test(p))) throw usage(`--redis: expected redis://host:port (or a comma list for a Redis Cluster), got "${url}"`);
  const IORedis = ioredis();
  const opts = { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true };
  const client = parts.length > 1
    ? new IORedis.Cluster(parts.map(p => { const u = new URL(p); return { host: u.hostname, port: Number(u.port || 6379) }; }), { redisOptions: opts, lazyConnect: true })
    : new IORedis(parts[0], opts);
  client.on('error', () => undefined);
  return client;
}

/**
 * `sonofs reindex`: re-creates the shared catalog's keys (cluster mode) from
 * the bundles of stopped nodes' roots, one root after another (lib/catalog/reindex.ts).
 */
export async function reindex(o: ReindexFlags): Promise<void> {
  const url = o.redis ?? process.env.SONOFS_REDIS_URL;
  if (!url) throw usage('reindex: name the cluster\'s Redis with --redis (or SONOFS_REDIS_URL)');
  if (!o.root.length) throw usage('reindex: name the data root of at least one stopped node with --root');
  const client = clientOf(url);
  try {
    // the engine (and its native modules) only for this command
    const { reindexNode } = await import('../../lib/catalog/reindex');
    try {
      await client.connect();
    } catch (err) {
      throw new CliError(EXIT.UNAVAILABLE, `reindex: cannot reach Redis at ${url}: ${(err as Error).message}`, err);
    }
    const results = [];
    for (const root of o.root) {
      const r = await reindexNode(path.resolve(root), client, { namespace: o.namespace, verifyData: o.verifyData });
      results.push({ root: path.resolve(root), ...r });
      if (!o.json) {
        process.stdout.write(`${path.resolve(root)}: node ${r.node}, ${r.bundles} bundles, ${r.applied} records replayed` +
          `${r.corrupt ? `, ${r.corrupt} corrupt left out` : ''}\n`);
      }
    }
    if (o.json) printJson(results);
  } finally {
    client.disconnect();
  }
}
