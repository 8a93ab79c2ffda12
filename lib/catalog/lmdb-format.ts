import { open, RootDatabase } from 'lmdb';
import { BLOBS, FORMAT_KEY, FORMAT_VERSION, REBUILD_KEY, decodeBlob } from './lmdb-encoding';
import { hasCatalog } from './lmdb-swap';
import { envHolders } from './env-holders';

/** The catalog's environment: binary keys and values (lmdb-encoding.ts). */
export function openCatalogEnv(dir: string, noSync: boolean, readOnly = false): RootDatabase<Buffer, Buffer> {
  return open<Buffer, Buffer>({ path: dir, compression: false, noSync, readOnly, keyEncoding: 'binary', encoding: 'binary' });
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

/**
 * Versions before format 2 check no format: run on a catalog of format 2, they
 * would take it for theirs, add keys of format 1 to it and serve from those.
 * Their leader's first read at every start is its allocator state, under the
 * ordered-binary key ['alloc'] (the bytes 'alloc', a key format 2 has no use
 * for). Format 2 keeps there a msgpack string followed by a byte msgpack never
 * uses (0xc1): their decoder (msgpackr) reads the string, finds a byte left and
 * throws "Data read, but end of buffer not reached" quoting the string (its
 * first 100 characters of JSON), so that start fails, saying why, before it
 * writes anything.
 */
export const FORMAT1_GUARD_KEY = Buffer.from('alloc');
const FORMAT1_GUARD = (() => {
  const text = Buffer.from(`[egg-sonofs] this catalog is in format ${FORMAT_VERSION}: this older egg-sonofs cannot read it (no downgrade)`);
  return Buffer.concat([ Buffer.from([ 0xd9, text.length ]), text, Buffer.from([ 0xc1 ]) ]); // str8, then the stray byte
})();
/** format 1's last seq (['seq']), which it writes with every operation */
const FORMAT1_SEQ_KEY = Buffer.from('seq');

/** Puts the guard (FORMAT1_GUARD_KEY) in a catalog of this format that lacks it: one written before it had one. */
export function guardAgainstFormat1(db: RootDatabase<Buffer, Buffer>): void {
  if (!db.getBinaryFast(FORMAT1_GUARD_KEY)) db.putSync(FORMAT1_GUARD_KEY, FORMAT1_GUARD);
}

/**
 * Whether a version before format 2 wrote to this catalog of format 2 (run on
 * it before it had the guard): its seq, or its allocator state in place of the
 * guard. Its keys would mix with ours; the leader rebuilds such a catalog.
 */
export function writtenByFormat1(db: RootDatabase<Buffer, Buffer>): boolean {
  if (db.getBinaryFast(FORMAT1_SEQ_KEY)) return true;
  // getBinary, not getBinaryFast: Buffer.equals misreads the view into lmdb's shared buffer that the latter answers
  const guard = db.getBinary(FORMAT1_GUARD_KEY);
  return guard !== undefined && !FORMAT1_GUARD.equals(guard);
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
  /** a version before format 2 wrote to this catalog of format 2 (writtenByFormat1) */
  writtenByFormat1?: boolean;
}

/**
 * Leader only, before anything opens the catalog, which it only reads: its
 * format, and a file id it holds (the node identity its ids carry, which a
 * catalog replaced for its format would take along). A newer format is
 * refused, and so is a catalog to be rebuilt that live processes still have
 * open (workers of the version before an upgrade): the swap would leave them
 * on the old file, serving and leasing from a catalog no one else sees.
 */
export async function probeCatalog(dir: string): Promise<CatalogProbe> {
  if (!hasCatalog(dir)) return { format: 0 };
  const db = openCatalogEnv(dir, true, true);
  let format: number;
  let anyFileId: string | undefined;
  let unfinishedRebuild: CatalogProbe['unfinishedRebuild'];
  let mixed = false;
  try {
    format = formatOf(db);
    if (format > FORMAT_VERSION) throw formatError(dir, format);
    mixed = format === FORMAT_VERSION && writtenByFormat1(db);
    if (format === FORMAT_VERSION && !mixed) {
      for (const { value } of db.getRange({ ...BLOBS, limit: 1 })) anyFileId = decodeBlob('', value).fileId;
      const rebuild = db.getBinaryFast(REBUILD_KEY);
      if (rebuild) unfinishedRebuild = { verifyData: rebuild[0] === 1 };
    }
    if (needsRebuild({ format, unfinishedRebuild, writtenByFormat1: mixed })) {
      const holders = envHolders(dir, db.readerList());
      if (holders.length) {
        throw new Error(`[egg-sonofs] the catalog in ${dir} must be rebuilt, but live processes still have it open (pid ${holders.join(', ')}): `
          + 'stop them (workers of the version before an upgrade?), then start again');
      }
    }
  } finally {
    await db.close();
  }
  if (format === 1) {
    // Format 1: ordered-binary array keys, msgpack values; a blob is ['b', sha1 hex] -> { fileId, ... }.
    const v1 = open({ path: dir, compression: false, noSync: true, readOnly: true });
    try {
      for (const { value } of v1.getRange({ start: [ 'b' ], end: [ 'b', '\uffff' ], limit: 1 })) anyFileId = value?.fileId;
    } finally {
      await v1.close();
    }
  }
  return { format, anyFileId, unfinishedRebuild, ...(mixed ? { writtenByFormat1: true } : {}) };
}

/**
 * Whether the leader rebuilds the catalog from the bundles (beside it, then
 * swapped in: lmdb-swap.ts): there is none, it is of an older format or an
 * older version wrote to it, or it is one a rebuild in place cut short
 * (ReplayOptions.rebuild) left partial.
 */
export function needsRebuild(probe: CatalogProbe): boolean {
  return probe.format !== FORMAT_VERSION || probe.unfinishedRebuild !== undefined || probe.writtenByFormat1 === true;
}
