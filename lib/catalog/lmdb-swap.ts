import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../bundle/files';

/**
 * The catalog's files, and how a catalog built from the bundles takes the
 * place of the one there. The leader builds a new catalog beside the old one
 * and swaps it in with one rename of its data file, so a kill at any moment
 * leaves either the old catalog, whole, or the new one, whole: an upgrade cut
 * short leaves the version before it a catalog to run on, and is done again
 * at the next start.
 *
 * The new catalog is built inside the catalog's directory, not beside it:
 * `meta/` may be a symbolic link to, or a mount of, another disk, and a rename
 * only stays within one filesystem.
 */
export const DATA_FILE = 'data.mdb';
export const LOCK_FILE = 'lock.mdb';

/** Where the leader builds a catalog from the bundles (an LMDB environment of its own). */
export function rebuildDir(dir: string): string {
  return path.join(dir, 'rebuild');
}

/** Whether `dir` holds a catalog (its data file). */
export function hasCatalog(dir: string): boolean {
  return fs.existsSync(path.join(dir, DATA_FILE));
}

/**
 * Deletes the catalog in `dir`: its files, not the directory, which may be a
 * symbolic link or a mount point that must stay (rmSync of a link removes the
 * link, and the catalog rebuilt in its place would land on the root's disk).
 */
export function removeCatalog(dir: string): void {
  fs.rmSync(path.join(dir, DATA_FILE), { force: true });
  fs.rmSync(path.join(dir, LOCK_FILE), { force: true });
  fsyncDir(dir);
}

/**
 * Deletes what a rebuild left beside the catalog in place: a catalog a kill
 * cut short before its swap (true), or the lock file of one swapped in.
 */
export function clearUnfinishedRebuild(dir: string): boolean {
  const next = rebuildDir(dir);
  if (!fs.existsSync(next)) return false;
  const unfinished = hasCatalog(next);
  fs.rmSync(next, { recursive: true, force: true });
  fsyncDir(dir);
  return unfinished;
}

/**
 * Puts the catalog built in rebuildDir(dir), closed, in place of the one in
 * `dir`. Its data file is synced first, then renamed over the old one: the
 * single step that switches catalogs. The lock file follows (LMDB resets a
 * lock file that no process has open, so a kill between the two is harmless).
 */
export function swapInRebuilt(dir: string): void {
  const next = rebuildDir(dir);
  const fd = fs.openSync(path.join(next, DATA_FILE), 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(path.join(next, DATA_FILE), path.join(dir, DATA_FILE));
  fsyncDir(dir);
  fs.rmSync(path.join(dir, LOCK_FILE), { force: true });
  if (fs.existsSync(path.join(next, LOCK_FILE))) fs.renameSync(path.join(next, LOCK_FILE), path.join(dir, LOCK_FILE));
  fs.rmSync(next, { recursive: true, force: true });
  fsyncDir(dir);
}
