import fs from 'node:fs';

/**
 * True while a process with this pid runs on this machine (EPERM: it exists,
 * owned by another user). A zombie is dead: it holds its pid until its parent
 * (or an init that reaps late, as in some containers) collects it, but it runs
 * nothing and holds nothing.
 */
export function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** State field of /proc/<pid>/stat (Linux); false where there is no /proc. */
function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from its closing one
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state === 'Z' || state === 'X';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && fs.existsSync('/proc/self/stat');
  }
}
