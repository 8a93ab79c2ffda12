import { execFile as execFileCb } from 'node:child_process';
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const fdatasync = promisify(fs.fdatasync);
const execFile = promisify(execFileCb);
const writev = promisify(fs.writev);

/** root/<dir>/<subDir>/<file>.snb, two lowercase hex digits each, as in sonofs. */
export function bundlePath(root: string, bundle: number): string {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return path.join(root, hex(bundle >> 16), hex((bundle >> 8) & 255), `${hex(bundle & 255)}.snb`);
}

/** Parses a bundle path relative to root back to its number; undefined if it is not one. */
export function bundleFromPath(rel: string): number | undefined {
  const m = /^([0-9a-f]{2})[\\/]([0-9a-f]{2})[\\/]([0-9a-f]{2})\.snb$/.exec(rel);
  if (!m) return undefined;
  return (parseInt(m[1], 16) << 16) | (parseInt(m[2], 16) << 8) | parseInt(m[3], 16);
}

/** Every bundle under root, in number order. */
export function listBundles(root: string): number[] {
  const out: number[] = [];
  const hexDir = /^[0-9a-f]{2}$/;
  for (const d of safeReaddir(root).filter(n => hexDir.test(n))) {
    for (const s of safeReaddir(path.join(root, d)).filter(n => hexDir.test(n))) {
      for (const f of safeReaddir(path.join(root, d, s))) {
        const n = bundleFromPath(`${d}/${s}/${f}`);
        if (n !== undefined) out.push(n);
      }
    }
  }
  return out.sort((a, b) => a - b);
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Creates a bundle of `size` bytes. ftruncate makes it sparse: an empty bundle
 * costs no disk, yet its address space is reserved (sonofs "pre-allocation").
 */
export function createBundle(root: string, bundle: number, size: number): void {
  const p = bundlePath(root, bundle);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const fd = fs.openSync(p, 'wx');
  try {
    fs.ftruncateSync(fd, size);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // The new name must survive a power cut too, or its records vanish with it.
  fsyncDir(path.dirname(p));
}

/**
 * Runs shorter than this keep their blocks until compaction: node has no
 * fallocate(2), and starting the fallocate program costs more (a process, a
 * fork of the worker's address space) than a small run's blocks are worth.
 */
export const PUNCH_MIN = 1 << 20;

/**
 * Frees [offset, offset + length) of a file's blocks (reads of it return
 * zeros), for a run of at least PUNCH_MIN; best effort. True when punched.
 */
export async function punchHole(file: string, offset: number, length: number): Promise<boolean> {
  if (length < PUNCH_MIN) return false;
  try {
    // node has no fallocate(2); util-linux's fallocate is on every Debian (no shell involved)
    await execFile('fallocate', [ '--punch-hole', '--offset', String(offset), '--length', String(length), file ]);
    return true;
  } catch {
    return false;
  }
}

/** Makes a directory's entries (new or renamed files) durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Coalesces fdatasync calls: callers that arrive while a sync runs share the
 * next one (group commit, as Haystack batches writes before one flush).
 */
class GroupSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  /**
   * After a failed fdatasync the kernel may have dropped the dirty pages, and
   * a later sync would succeed without them ("fsyncgate"): from then on every
   * sync of the bundle fails, so nothing written before is acknowledged.
   */
  failed: Error | undefined;

  constructor(private readonly fd: number) {}

  sync(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    // Callers until the next fdatasync is issued share it: it covers every
    // write they made. It is issued once the running one is done, and only
    // after the current turn of the event loop, so uploads acknowledged in
    // one batch (one catalog commit) need one sync, not two.
    this.next ??= new Promise<void>((resolve, reject) => {
      const issue = () => {
        this.next = undefined;
        this.start().then(resolve, reject);
      };
      const after = this.running ?? Promise.resolve();
      after.then(() => setImmediate(issue), () => setImmediate(issue));
    });
    return this.next;
  }

  private start(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const p = fdatasync(this.fd).catch((err: Error) => {
      this.failed ??= err;
      throw err;
    }).finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }
}

interface OpenBundle {
  fd: number;
  refs: number;
  sync: GroupSync;
  /** closeAll() ran while the fd was in use: close it when the last user lets go */
  closing?: boolean;
}

/**
 * One fd per open bundle for the whole process (sonofs leaked one per op).
 * Handles are reference-counted; idle ones beyond `maxOpen` are closed.
 */
export class BundleFiles {
  private readonly open = new Map<number, OpenBundle>();
  /** bundles whose fdatasync failed: stays failed when the fd is closed and opened again */
  private readonly syncFailed = new Map<number, Error>();

  constructor(readonly root: string, private readonly maxOpen = 512) {}

  path(bundle: number): string {
    return bundlePath(this.root, bundle);
  }

  /** Opens (or shares) a bundle's fd. Throws ENOENT for a bundle that does not exist. */
  acquire(bundle: number): number {
    let ob = this.open.get(bundle);
    if (!ob) {
      const fd = fs.openSync(this.path(bundle), 'r+');
      ob = { fd, refs: 0, sync: new GroupSync(fd) };
      ob.sync.failed = this.syncFailed.get(bundle);
      this.open.set(bundle, ob);
      this.evictIdle();
    } else {
      // Map order doubles as LRU order.
      this.open.delete(bundle);
      this.open.set(bundle, ob);
    }
    ob.refs++;
    return ob.fd;
  }

  release(bundle: number): void {
    const ob = this.open.get(bundle);
    if (!ob || ob.refs === 0) return;
    ob.refs--;
    if (ob.closing && ob.refs === 0) {
      this.open.delete(bundle);
      fs.closeSync(ob.fd);
    }
  }

  /**
   * Durable: waits until everything written to the bundle so far is on disk.
   * Holds the fd (opening it when this process has not) until the sync is done,
   * so eviction or closeAll() cannot close it under the fdatasync.
   */
  async sync(bundle: number): Promise<void> {
    this.acquire(bundle);
    const ob = this.open.get(bundle)!;
    try {
      await ob.sync.sync();
    } catch (err) {
      this.syncFailed.set(bundle, ob.sync.failed ?? (err as Error));
      throw err;
    } finally {
      this.release(bundle);
    }
  }

  private evictIdle(): void {
    if (this.open.size <= this.maxOpen) return;
    for (const [ bundle, ob ] of this.open) {
      if (this.open.size <= this.maxOpen) break;
      if (ob.refs === 0) {
        this.open.delete(bundle);
        fs.closeSync(ob.fd);
      }
    }
  }

  /** Closes idle fds now and the others when their last user releases them (a read still streaming). */
  closeAll(): void {
    for (const [ bundle, ob ] of this.open) {
      if (ob.refs > 0) {
        ob.closing = true;
        continue;
      }
      this.open.delete(bundle);
      fs.closeSync(ob.fd);
    }
  }
}

/** Writes all of `bufs` back to back at `at` with one vectored write (a short write, rare, is finished). */
export async function writevFully(fd: number, bufs: Buffer[], at: number): Promise<void> {
  const total = bufs.reduce((n, b) => n + b.length, 0);
  const { bytesWritten } = await writev(fd, bufs, at);
  if (bytesWritten < total) await writevFully(fd, [ Buffer.concat(bufs).subarray(bytesWritten) ], at + bytesWritten);
}

/**
 * Write-behind for one long write: every 16 MiB it starts an fdatasync in the
 * background, so the sync before the answer has only the tail left to flush
 * instead of the whole file. settled() throws the error of a failed one.
 */
export class WriteBehind {
  private static readonly EVERY = 16 << 20;
  private flushedAt = 0;
  private last: Promise<void> = Promise.resolve();

  constructor(private readonly sync: () => Promise<void>) {}

  /** `total` bytes have been written so far. */
  wrote(total: number): void {
    if (total - this.flushedAt < WriteBehind.EVERY) return;
    this.flushedAt = total;
    this.last = this.sync();
    this.last.catch(() => undefined); // reported by settled()
  }

  settled(): Promise<void> {
    return this.last;
  }
}

/** `len` bytes at `pos` of an open file, fewer where the file ends. */
export async function readFullyAt(fh: FileHandle, pos: number, len: number): Promise<Buffer> {
  const b = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(b, done, len - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return b.subarray(0, done);
}

/** All of `b` at `pos` of an open file (a write may take several calls). */
export async function writeFullyAt(fh: FileHandle, b: Buffer, pos: number): Promise<void> {
  for (let done = 0; done < b.length;) done += (await fh.write(b, done, b.length - done, pos + done)).bytesWritten;
}
