import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { bundlePath, fsyncDir } from '../bundle/files';
import type { Hole } from './protocol';

/**
 * A node keeps the copies of its group peers' bundles under its own root:
 * root/replicas/<group>-<server>/ holds each peer bundle at the path and the
 * offsets it has on its owner (a file id of the peer leads straight to it),
 * and beside each bundle a `.pos` file: how far it is copied.
 */
export function replicasDir(root: string): string {
  return path.join(root, 'replicas');
}

export function peerDir(root: string, group: number, server: number): string {
  return path.join(replicasDir(root), `${group}-${server}`);
}

export function replicaBundlePath(root: string, group: number, server: number, bundle: number): string {
  return bundlePath(peerDir(root, group, server), bundle);
}

/**
 * How far a copy of one bundle is: everything before `end` is copied except
 * the holes, places that were still being written on the owner (or failed a
 * checksum) when last asked.
 */
export interface Position {
  end: number;
  holes: Hole[];
}

function positionFile(bundleFile: string): string {
  return bundleFile.replace(/\.snb$/, '.pos');
}

/** The saved position of a copy; nothing copied when there is none (or it is unreadable: copying again is harmless). */
export function loadPosition(bundleFile: string): Position {
  try {
    const v = JSON.parse(fs.readFileSync(positionFile(bundleFile), 'utf8'));
    const holesOk = Array.isArray(v?.holes) && v.holes.every((h: unknown) => Array.isArray(h) && h.length === 2 && h.every(Number.isSafeInteger));
    if (Number.isSafeInteger(v?.end) && v.end >= 0 && holesOk) return { end: v.end, holes: v.holes };
  } catch { /* none yet */ }
  return { end: 0, holes: [] };
}

/**
 * Saves a position once the bytes it covers are synced. Not synced itself: a
 * position lost in a power cut only makes the copy start again from an older
 * one, and copying a record again writes the same bytes at the same place.
 */
export function savePosition(bundleFile: string, p: Position): void {
  const file = positionFile(bundleFile);
  const tmp = `${file}.tmp`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(tmp, JSON.stringify(p));
  fs.renameSync(tmp, file);
}

/** Writes into the copy of one peer bundle, created (and its directories made durable) on first use. */
export class ReplicaWriter {
  private fh: FileHandle | undefined;

  constructor(readonly file: string, private readonly top: string) {}

  async write(bufs: Buffer[], pos: number): Promise<void> {
    const fh = this.fh ??= await this.open();
    const total = bufs.reduce((n, b) => n + b.length, 0);
    let done = 0;
    while (done < total) {
      const { bytesWritten } = await fh.writev(done ? [ Buffer.concat(bufs).subarray(done) ] : bufs, pos + done);
      done += bytesWritten;
    }
  }

  /** Everything written so far is on disk. */
  async sync(): Promise<void> {
    await this.fh?.datasync();
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
  }

  private async open(): Promise<FileHandle> {
    try {
      return await fs.promises.open(this.file, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const fh = await fs.promises.open(this.file, 'wx+');
    await fh.sync();
    // the new name must survive a power cut, or a saved position would point past bytes that are gone
    for (let dir = path.dirname(this.file); dir.startsWith(this.top); dir = path.dirname(dir)) fsyncDir(dir);
    return fh;
  }
}

/**
 * The peer whose bundles a directory copies is named by its data root's
 * instance id. A different instance under the same group and server is
 * another store (the old one was replaced): its offsets mean nothing here,
 * so the old copy is moved aside (kept, never deleted) and copying starts anew.
 * Returns the name the old copy was moved to, if any.
 */
export function claimPeerDir(dir: string, instance: string): string | undefined {
  const file = path.join(dir, 'peer.json');
  let held: string | undefined;
  try {
    held = JSON.parse(fs.readFileSync(file, 'utf8')).instance;
  } catch { /* new */ }
  if (held === instance) return undefined;
  let moved: string | undefined;
  if (held !== undefined) {
    moved = `${dir}.was-${held}`;
    fs.renameSync(dir, moved);
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ instance }) + '\n', { flush: true });
  for (let d = dir, i = 0; i < 3; d = path.dirname(d), i++) fsyncDir(d); // up to the root
  return moved;
}
