import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../bundle/files';
import { hasCatalog, removeCatalog } from './lmdb-swap';

/**
 * The catalog commits without fsync (LMDB noSync): a process crash loses
 * nothing, since committed pages are already in the OS page cache, but an OS
 * crash or a power loss can leave the LMDB file torn. Bundles are the durable
 * truth (an upload is acknowledged only once its record is fsynced), so after
 * such a crash the catalog is rebuilt from them. This marker, beside the
 * catalog directory, says so: it holds the boot id of the system that opened
 * the catalog, and is removed only after a final sync at a clean shutdown.
 */

const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

/** The boot id to use: `option` when given (tests pretend reboots; null: none, synced commits), else this boot's. */
export function bootIdFrom(option: string | null | undefined): string | undefined {
  return option === undefined ? currentBootId() : option ?? undefined;
}

/** This boot's id (Linux); undefined elsewhere, where the catalog keeps synced commits. */
export function currentBootId(): string | undefined {
  try {
    return fs.readFileSync(BOOT_ID_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function markerPath(catalogDir: string): string {
  return `${catalogDir}.unsynced`;
}

function readMarker(catalogDir: string): string | undefined {
  try {
    return fs.readFileSync(markerPath(catalogDir), 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Durably records that `bootId` has the catalog open with unsynced commits (before its first write). */
export function markUnsynced(catalogDir: string, bootId: string): void {
  if (readMarker(catalogDir) === bootId) return;
  const file = markerPath(catalogDir);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, `${bootId}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** After a final sync of the catalog at a clean shutdown. */
export function clearUnsynced(catalogDir: string): void {
  fs.rmSync(markerPath(catalogDir), { force: true });
  fsyncDir(path.dirname(catalogDir));
}

/** A catalog marked unsynced by another boot: the system went down with it open, so its file may be torn. */
export function tornByOsCrash(catalogDir: string, bootId: string): boolean {
  const marked = readMarker(catalogDir);
  return marked !== undefined && marked !== bootId && hasCatalog(catalogDir);
}

/**
 * Leader only, before anything opens the catalog: deletes a catalog an OS
 * crash may have torn, to be rebuilt from the bundles. True when it did.
 */
export function dropCatalogTornByOsCrash(catalogDir: string, bootId: string | undefined): boolean {
  if (bootId === undefined || !tornByOsCrash(catalogDir, bootId)) return false;
  removeCatalog(catalogDir);
  // Nothing is left to be torn; the catalog built in its place must not be taken for it.
  clearUnsynced(catalogDir);
  return true;
}
