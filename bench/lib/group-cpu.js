'use strict';
// CPU time, user and system apart, of whole process groups (a server: launcher,
// master, agent, workers; a browser: every Chromium process) and of the commands
// this process ran to completion (their time is added to ours once reaped), from /proc.
const fs = require('node:fs');
const { roleOf } = require('./thread-cpu');

const TICK_S = 0.01; // USER_HZ 100

/** Every live process of the groups in `groups`: Map pid → { pgrp, role, user, system } (ticks). */
function groupSnapshot(groups) {
  const out = new Map();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp ... utime(11) stime(12)
      const pgrp = Number(f[2]);
      if (!groups.includes(pgrp)) continue;
      out.set(pid, { pgrp, role: roleOf(pid), user: Number(f[11]), system: Number(f[12]) });
    } catch (err) {
      if (err.code !== 'ENOENT' && err.code !== 'ESRCH') throw err;
    }
  }
  return out;
}

/**
 * Seconds of CPU that group `pgrp` used between two snapshots: { userS, systemS, byRole }.
 * A process that ended in between is missed (its time goes to its parent's
 * children's time only when reaped); servers and browsers keep theirs alive.
 */
function groupCpu(before, after, pgrp) {
  const sum = { userS: 0, systemS: 0, byRole: {} };
  for (const [ pid, p ] of after) {
    if (p.pgrp !== pgrp) continue;
    const b = before.get(pid) ?? { user: 0, system: 0 };
    const user = (p.user - b.user) * TICK_S;
    const system = (p.system - b.system) * TICK_S;
    sum.userS += user;
    sum.systemS += system;
    const role = sum.byRole[p.role] ??= { userS: 0, systemS: 0 };
    role.userS += user;
    role.systemS += system;
  }
  return sum;
}

/** CPU ticks of the children this process has waited for (/proc/self/stat cutime, cstime). */
function reapedChildrenTicks() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[13]), system: Number(f[14]) };
}

/** Seconds of CPU of the children reaped since `before` (a reapedChildrenTicks()). */
function reapedChildrenCpu(before) {
  const now = reapedChildrenTicks();
  return { userS: (now.user - before.user) * TICK_S, systemS: (now.system - before.system) * TICK_S };
}

module.exports = { groupSnapshot, groupCpu, reapedChildrenTicks, reapedChildrenCpu };
