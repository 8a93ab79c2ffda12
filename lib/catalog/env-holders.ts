import fs from 'node:fs';
import path from 'node:path';
import { isAlive } from '../pid';

/**
 * The live processes other than this one that have the LMDB environment in
 * `dir` open. LMDB's reader table (`readerList`) names only processes that
 * have read from it; every process that opened it also holds a POSIX lock on
 * its lock file, which Linux lists in /proc/locks, read or not. Both count.
 */
export function envHolders(dir: string, readerList: string): number[] {
  const pids = new Set<number>();
  for (const m of readerList.matchAll(/^\s*(\d+)\s/gm)) pids.add(Number(m[1]));
  for (const pid of lockHolders(path.join(dir, 'lock.mdb'))) pids.add(pid);
  return [ ...pids ].filter(pid => pid !== process.pid && pid > 0 && isAlive(pid)).sort((a, b) => a - b);
}

/** Pids holding a POSIX lock on `file` (Linux; none elsewhere). */
function lockHolders(file: string): number[] {
  let locks: string;
  let st: fs.Stats;
  try {
    locks = fs.readFileSync('/proc/locks', 'utf8');
    st = fs.statSync(file);
  } catch {
    return [];
  }
  // /proc/locks names a file as major:minor:inode, major and minor in hex (glibc's split of st_dev)
  const major = ((st.dev >> 8) & 0xfff).toString(16).padStart(2, '0');
  const minor = ((st.dev & 0xff) | ((st.dev >> 12) & 0xfff00)).toString(16).padStart(2, '0');
  const id = `${major}:${minor}:${st.ino}`;
  const pids: number[] = [];
  // "1: POSIX  ADVISORY  READ 1234 fe:00:2147697 0 0" (blocked requests start with "->")
  for (const line of locks.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === 'POSIX' && f[5] === id) pids.push(Number(f[4]));
  }
  return pids;
}
