import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from '../pid';
import { currentBootId } from '../catalog/unsynced-marker';

/**
 * One leader per store root. Two agents on one root would each run an
 * allocator over the same bundles and hand out the same space twice. The lock
 * is a file naming its holder, as PostgreSQL's postmaster.pid, which the
 * holder also touches every few seconds. A holder this process can see (same
 * host, same pid namespace) is judged by its pid and start time; any other
 * (another container on a shared volume, another machine) by that heartbeat.
 * A holder that is gone leaves a stale lock that the next start takes over.
 */
export interface RootLockHolder {
  pid: number;
  host: string;
  /** the system boot the holder ran in (a reboot makes every old lock stale) */
  bootId?: string;
  /** the holder's pid namespace (a container's pids mean nothing outside it) */
  pidNs?: string;
  /** the holder's start time in clock ticks since boot, so a reused pid is not taken for it */
  startTime?: number;
  since: string;
  /** tells this hold from another one of the same process taken in the same millisecond (release removes only its own) */
  hold?: string;
}

export interface RootLock {
  readonly file: string;
  release(): void;
}

export interface RootLockOptions {
  /** how often the holder touches the lock */
  heartbeatMs?: number;
  /** a lock of a holder we cannot see that was not touched this long is stale */
  staleMs?: number;
}

const FILE = 'sonofs.lock';
const HEARTBEAT_MS = 2000;
const STALE_MS = 10_000;

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

function pidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

function me(): RootLockHolder {
  return {
    pid: process.pid, host: os.hostname(), bootId: currentBootId(), pidNs: pidNamespace(), startTime: processStartTime(process.pid),
    since: new Date().toISOString(), hold: randomBytes(6).toString('hex'),
  };
}

/** 'stale' or 'alive' for a holder this process can see; 'unseen' when only its heartbeat can tell. */
function judge(h: RootLockHolder): 'alive' | 'stale' | 'unseen' {
  const self = me();
  if (h.host !== self.host || h.pidNs !== self.pidNs) return 'unseen';
  if (h.bootId && self.bootId && h.bootId !== self.bootId) return 'stale';
  if (!isAlive(h.pid)) return 'stale';
  const started = processStartTime(h.pid);
  return h.startTime === undefined || started === undefined || started === h.startTime ? 'alive' : 'stale';
}

/** The lock's content and its last touch, or undefined when there is no lock. */
function readLock(file: string): { text: string; holder?: RootLockHolder; touched: number } | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const touched = fs.statSync(file).mtimeMs;
    let holder: RootLockHolder | undefined;
    try {
      const h = JSON.parse(text) as RootLockHolder;
      if (Number.isInteger(h.pid) && typeof h.host === 'string') holder = h;
    } catch { /* not ours, or damaged: nobody holds it */ }
    return { text, holder, touched };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Puts `text` at `file` only if there is no file there: written in full first, then linked in one step. */
function createExclusive(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, text, { flag: 'wx', flush: true });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Removes the lock if it still holds `text` (the stale lock we judged): it is
 * first moved aside, which only one taker can do, then checked; a fresh lock
 * moved by mistake (taken between our read and the move) is put back.
 */
function removeIfUnchanged(file: string, text: string): void {
  const aside = `${file}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    fs.renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    if (fs.readFileSync(aside, 'utf8') !== text) fs.linkSync(aside, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.rmSync(aside, { force: true });
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
 * Takes the root for this process, or throws naming the holder. A holder it
 * cannot see is watched until its heartbeat stops (at most `staleMs`). A
 * process may take its own root again (a test reopening a store it left
 * open, as a crash would).
 */
export async function lockRoot(root: string, opts: RootLockOptions = {}): Promise<RootLock> {
  const staleMs = opts.staleMs ?? STALE_MS;
  const file = path.join(root, FILE);
  const mine = me();
  const text = JSON.stringify(mine) + '\n';
  const deadline = Date.now() + staleMs + 1000;
  for (;;) {
    if (createExclusive(file, text)) return held(file, text, opts.heartbeatMs ?? HEARTBEAT_MS);
    const cur = readLock(file);
    if (!cur) continue; // released meanwhile
    const h = cur.holder;
    const ours = h?.pid === mine.pid && h.host === mine.host && h.pidNs === mine.pidNs && h.startTime === mine.startTime;
    const verdict = !h || ours ? 'stale' : judge(h);
    const beating = Date.now() - cur.touched < staleMs;
    if (verdict === 'stale' || (verdict === 'unseen' && !beating)) {
      removeIfUnchanged(file, cur.text);
      continue;
    }
    if (verdict === 'unseen' && Date.now() < deadline) {
      // another host or container: wait to see whether it still beats
      await new Promise(r => setTimeout(r, Math.min(500, staleMs / 4)));
      continue;
    }
    throw new Error(`[egg-sonofs] config.sonofs.root ${root} is in use by pid ${h!.pid} on host ${h!.host} (since ${h!.since}): ` +
      'one node per root. Stop that node, or give this one another root' +
      (verdict === 'unseen' ? ` (it runs in another host or container and still touches ${file})` : ''));
  }
}

function held(file: string, text: string, heartbeatMs: number): RootLock {
  let released = false;
  const stillOurs = () => {
    try {
      return fs.readFileSync(file, 'utf8') === text;
    } catch {
      return false;
    }
  };
  // The heartbeat: a holder nobody can see by pid shows it lives by touching the lock.
  const beat = setInterval(() => {
    if (!stillOurs()) return;
    const now = new Date();
    try {
      fs.utimesSync(file, now, now);
    } catch { /* gone: nothing to keep alive */ }
  }, heartbeatMs);
  beat.unref();
  return {
    file,
    release() {
      if (released) return;
      released = true;
      clearInterval(beat);
      // only our own lock: a test may have reopened the root in this process meanwhile
      if (stillOurs()) fs.rmSync(file, { force: true });
    },
  };
}
