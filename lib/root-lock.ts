import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from './pid';
import { currentBootId } from './unsynced-marker';

/**
 * One leader per store root. Two agents on one root would each run an
 * allocator over the same bundles and hand out the same space twice. The lock
 * is a file naming its holder (pid, host, boot id, process start time), as
 * PostgreSQL's postmaster.pid: a holder that is gone (crashed, killed, the
 * machine rebooted) leaves a stale lock that the next start takes over.
 */
export interface RootLockHolder {
  pid: number;
  host: string;
  /** the system boot the holder ran in (a reboot makes every old lock stale) */
  bootId?: string;
  /** the holder's start time in clock ticks since boot, so a reused pid is not taken for it */
  startTime?: number;
  since: string;
}

export interface RootLock {
  readonly file: string;
  release(): void;
}

const FILE = 'sonofs.lock';

/** Field 22 of /proc/<pid>/stat (Linux), undefined elsewhere or when the process is gone. */
function processStartTime(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from its closing one
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

function me(): RootLockHolder {
  return {
    pid: process.pid, host: os.hostname(), bootId: currentBootId(), startTime: processStartTime(process.pid),
    since: new Date().toISOString(),
  };
}

/** True when the holder may still be running; a holder on another host cannot be judged from here. */
function mayBeAlive(h: RootLockHolder): boolean {
  if (h.host !== os.hostname()) return true;
  if (h.bootId && h.bootId !== currentBootId()) return false;
  if (!isAlive(h.pid)) return false;
  const started = processStartTime(h.pid);
  return h.startTime === undefined || started === undefined || started === h.startTime;
}

function readHolder(file: string): RootLockHolder | undefined {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as RootLockHolder;
    return Number.isInteger(h.pid) && typeof h.host === 'string' ? h : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
    return undefined; // torn by a crash between create and write: nobody holds it
  }
}

/**
 * Makes the root if needed and checks that this process can write there, so
 * a wrong owner or a read-only mount is reported as such at start.
 */
export function prepareRoot(root: string): void {
  const uid = process.getuid?.() ?? 'unknown';
  try {
    fs.mkdirSync(root, { recursive: true });
    fs.accessSync(root, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') {
      throw new Error(`[egg-sonofs] config.sonofs.root ${root} is not writable by uid ${uid} (${e.code})`);
    }
    if (e.code === 'ENOTDIR' || e.code === 'EEXIST') throw new Error(`[egg-sonofs] config.sonofs.root ${root} is not a directory`);
    throw err;
  }
}

/**
 * Takes the root for this process, or throws naming the holder. A process may
 * take its own root again (a test reopening a store it left open, as a crash
 * would).
 */
export function lockRoot(root: string): RootLock {
  const file = path.join(root, FILE);
  const mine = me();
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, JSON.stringify(mine) + '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return held(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: RootLockHolder | undefined;
    try {
      holder = readHolder(file);
    } catch {
      continue; // released meanwhile: try again
    }
    const ours = holder?.pid === process.pid && holder.host === mine.host && holder.startTime === mine.startTime;
    if (holder && !ours && mayBeAlive(holder)) {
      throw new Error(`[egg-sonofs] config.sonofs.root ${root} is in use by pid ${holder.pid} on host ${holder.host} ` +
        `(since ${holder.since}): one node per root. Stop that node, or give this one another root` +
        (holder.host === mine.host ? '' : `; if that node is gone for good, remove ${file}`));
    }
    // Stale (or our own): remove it and race for a fresh one; the loser finds the winner alive.
    fs.rmSync(file, { force: true });
  }
  throw new Error(`[egg-sonofs] could not take ${file}: it keeps changing hands`);
}

function held(file: string): RootLock {
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      // only our own lock: a test may have reopened the root in this process meanwhile
      try {
        if (readHolder(file)?.pid === process.pid) fs.rmSync(file, { force: true });
      } catch { /* already gone */ }
    },
  };
}
