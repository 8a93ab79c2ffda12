import type { Catalog } from './catalog';
import { LmdbCatalog } from './lmdb-catalog';
import type { SessionStore } from './sessions/types';
import { LmdbSessionStore, sessionsDir } from './sessions/lmdb-sessions';
import { catalogDir } from './standalone';

/**
 * Where a node keeps the metadata its processes share: the catalog (content
 * and links) and the upload sessions. The one place a backend is chosen; the
 * boot files and the engine only see the interfaces.
 * - embedded: LMDB environments beside the bundles (no external service).
 * Cluster mode adds its Redis backend here.
 */
export type MetadataBackend = { kind: 'embedded' };

export const EMBEDDED: MetadataBackend = { kind: 'embedded' };

/** A worker's handle on the catalog the leader recovered (agent: standalone.ts openLeader). */
export function openCatalog(root: string, backend: MetadataBackend = EMBEDDED): Catalog {
  switch (backend.kind) {
    case 'embedded': return new LmdbCatalog(catalogDir(root));
  }
}

/** The upload sessions, which any process of the node may continue; `node` names this node in its locks. */
export function openSessionStore(root: string, node: string, backend: MetadataBackend = EMBEDDED): SessionStore {
  switch (backend.kind) {
    case 'embedded': return new LmdbSessionStore(sessionsDir(root), node);
  }
}
