/**
 * egg-redis 2 client settings from one URL, as the demo takes them from
 * SONOFS_REDIS_URL: `redis://[:password@]host:port[/db]` (or `rediss://`) for
 * one server, a comma list `redis://host:port,host:port,...` for a Redis
 * Cluster. The client fails a call within seconds while Redis is away instead
 * of queueing it (the registry retries on its own), and reconnects forever.
 */
export function redisClientFromUrl(url: string) {
  const failFast = { maxRetriesPerRequest: 1, connectTimeout: 3000, enableOfflineQueue: false };
  const parts = url.split(',').map(s => s.trim()).filter(Boolean);
  const parsed = parts.map(p => new URL(/^[a-z]+:\/\//.test(p) ? p : `redis://${p}`));
  for (const u of parsed) {
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`SONOFS_REDIS_URL: ${u.protocol} is not redis: or rediss:`);
  }
  const first = parsed[0];
  if (!first) throw new Error('SONOFS_REDIS_URL is empty');
  const auth = {
    password: first.password ? decodeURIComponent(first.password) : null,
    ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  if (parsed.length > 1) {
    return {
      cluster: true,
      nodes: parsed.map(u => ({ host: u.hostname, port: Number(u.port || 6379) })),
      enableOfflineQueue: false,
      redisOptions: { ...auth, maxRetriesPerRequest: 1, connectTimeout: 3000 },
    };
  }
  return { host: first.hostname, port: Number(first.port || 6379), db: Number(first.pathname.slice(1) || 0), ...auth, ...failFast };
}
