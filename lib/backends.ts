import type { AllocationLedger, Catalog } from './catalog/types';
import { ClusterNodeCatalog } from './catalog/node-catalog';
import { LmdbCatalog } from './catalog/lmdb-catalog';
import { RedisCatalog } from './catalog/redis-catalog';
import { guardRedis } from './catalog/redis-guard';
import type { RedisClient } from './catalog/redis-client';
import type { Liveness } from './liveness';
import type { SessionStore } from './sessions/types';
import { LmdbSessionStore, sessionsDir } from './sessions/lmdb-sessions';
import { RedisSessionStore } from './sessions/redis-sessions';
import { NodeOptions, catalogDir, ledgerDir, openLeader } from './standalone';

/**
 * Where a node keeps the metadata its processes share: the catalog (content
 * and links) and the upload sessions. The one place a backend is chosen; the
 * boot files and the engine only see the interfaces.
 * - embedded: LMDB environments beside the bundles (no external service);
 * - redis: shared by every node of a cluster, through the app's client.
 */
export type MetadataBackend =
  | { kind: 'embedded' }
  | { kind: 'redis'; client: RedisClient; namespace?: string; liveness?: Liveness; callTimeoutMs?: number };

export const EMBEDDED: MetadataBackend = { kind: 'embedded' };

/**
 * A worker's handle on the catalog (the leader's is openNodeLeader's), of the
 * same shape: in cluster mode the shared catalog with the node's allocation
 * ledger beside it, which replication reads to know what is committed.
 */
export function openCatalog(root: string, node: string, backend: MetadataBackend = EMBEDDED): Catalog & AllocationLedger {
  switch (backend.kind) {
    case 'embedded': return new LmdbCatalog(catalogDir(root));
    case 'redis': return new ClusterNodeCatalog(new RedisCatalog(backend.client, { namespace: backend.namespace, node, callTimeoutMs: backend.callTimeoutMs }), new LmdbCatalog(ledgerDir(root)));
  }
}

/**
 * The leader's half of a node (the agent): recovery and allocation. Embedded:
 * its LMDB catalog is the whole catalog. Redis: content and links are the
 * shared catalog's, and the node's LMDB keeps only its allocation ledger
 * (catalog/node-catalog.ts).
 */
export function openNodeLeader(opts: NodeOptions, node: string, backend: MetadataBackend = EMBEDDED) {
  switch (backend.kind) {
    case 'embedded': return openLeader(opts);
    case 'redis': return openLeader(opts, new RedisCatalog(backend.client, { namespace: backend.namespace, node, callTimeoutMs: backend.callTimeoutMs }));
  }
}

/** The upload sessions, which any process of the node (any node, on Redis) may continue; `node` names this node in its locks. */
export function openSessionStore(root: string, node: string, backend: MetadataBackend = EMBEDDED): SessionStore {
  switch (backend.kind) {
    case 'embedded': return new LmdbSessionStore(sessionsDir(root), node);
    case 'redis':
      if (!backend.liveness) throw new Error('[egg-sonofs] upload sessions on Redis need the registry\'s liveness');
      // the catalog's guard: a call fails as 503 METADATA_UNAVAILABLE while Redis is away, never hangs
      return new RedisSessionStore(guardRedis(backend.client, backend.callTimeoutMs), node, { namespace: backend.namespace, liveness: backend.liveness });
  }
}
