import { open, RootDatabase } from 'lmdb';
import { BLOBS, FORMAT_KEY, FORMAT_VERSION, REBUILD_KEY, decodeBlob } from './catalog-encoding';
import { hasCatalog } from './catalog-swap';

/** The catalog's environment: binary keys and values (catalog-encoding.ts). */
export function openCatalogEnv(dir: string, noSync: boolean): RootDatabase<Buffer, Buffer> {
  return open<Buffer, Buffer>({ path: dir, compression: false, noSync, keyEncoding: 'binary', encoding: 'binary' });
}

/**
 * The format of the catalog in `db`: a number stored with it since format 2;
 * 1 for the msgpack catalog before (no version), 0 for an empty environment.
 */
export function formatOf(db: RootDatabase<Buffer, Buffer>): number {
  const v = db.getBinaryFast(FORMAT_KEY);
  if (v) return v[0];
  for (const _key of db.getKeys({ limit: 1 })) return 1;
  return 0;
}

export function formatError(dir: string, format: number): Error {
  return new Error(format < FORMAT_VERSION
    ? `[egg-sonofs] the catalog in ${dir} is in format ${format}, older than this version's ${FORMAT_VERSION}; the leader must rebuild it first`
    : `[egg-sonofs] the catalog in ${dir} is in format ${format}, newer than this version's ${FORMAT_VERSION}: run a version of egg-sonofs that reads it`);
}

export interface CatalogProbe {
  /** 0: no catalog, or an empty environment */
  format: number;
  anyFileId?: string;
  /** a rebuild from the bundles was cut short (ReplayOptions.rebuild), and whether it checked data */
  unfinishedRebuild?: { verifyData: boolean };
}

/**
 * Leader only, before anything opens the catalog: its format, and a file id it
 * holds (the node identity its ids carry, which a catalog dropped for its
 * format would take along). A newer format is refused.
 */
export async function probeCatalog(dir: string): Promise<CatalogProbe> {
  if (!hasCatalog(dir)) return { format: 0 };
  const db = openCatalogEnv(dir, true);
  let format: number;
  let anyFileId: string | undefined;
  let unfinishedRebuild: CatalogProbe['unfinishedRebuild'];
  try {
    format = formatOf(db);
    if (format > FORMAT_VERSION) throw formatError(dir, format);
    if (format === FORMAT_VERSION) {
      for (const { value } of db.getRange({ ...BLOBS, limit: 1 })) anyFileId = decodeBlob('', value).fileId;
      const rebuild = db.getBinaryFast(REBUILD_KEY);
      if (rebuild) unfinishedRebuild = { verifyData: rebuild[0] === 1 };
    }
  } finally {
    await db.close();
  }
  if (format === 1) {
    // Format 1: ordered-binary array keys, msgpack values; a blob is ['b', sha1 hex] -> { fileId, ... }.
    const v1 = open({ path: dir, compression: false, noSync: true });
    try {
      for (const { value } of v1.getRange({ start: [ 'b' ], end: [ 'b', '\uffff' ], limit: 1 })) anyFileId = value?.fileId;
    } finally {
      await v1.close();
    }
  }
  return { format, anyFileId, unfinishedRebuild };
}

/**
 * Whether the leader rebuilds the catalog from the bundles (beside it, then
 * swapped in: catalog-swap.ts): there is none, it is of an older format, or it
 * is one a rebuild in place cut short (ReplayOptions.rebuild) left partial.
 */
export function needsRebuild(probe: CatalogProbe): boolean {
  return probe.format !== FORMAT_VERSION || probe.unfinishedRebuild !== undefined;
}
