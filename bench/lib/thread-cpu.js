'use strict';
// Where a server's CPU goes, thread by thread: user and kernel time of every
// thread of every process in a process group, from /proc/<pid>/task/<tid>/stat,
// grouped by process role (egg master, agent, app worker, Chromium's kinds, other) and thread name
// (the main thread, libuv's pool, V8's helpers, lmdb's writer, ...).
const fs = require('node:fs');

const TICK_MS = 10; // USER_HZ 100

function roleOf(pid) {
  let cmd = '';
  try {
    cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return 'gone';
  }
  // a browser's processes (bench/faces.js): the main one, and each child by its --type
  if (/chrom/.test(cmd.split(' ')[0])) {
    const type = /--type=([\w-]+)/.exec(cmd);
    const sub = /--utility-sub-type=[\w.]*?(\w+)\.mojom/.exec(cmd);
    return type ? `chromium ${type[1]}${sub ? ` ${sub[1]}` : ''}` : 'chromium';
  }
  if (/agent_worker/.test(cmd)) return 'agent';
  if (/app_worker/.test(cmd)) return 'worker';
  if (/start-cluster|egg-scripts|master/.test(cmd)) return 'master';
  return 'other';
}

/** Ticks per thread of the processes in group `pgrp`: Map key `${pid}/${tid}` → { role, name, user, system }. */
function threadSnapshot(pgrp) {
  const out = new Map();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let tids;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgrp) continue;
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    const role = roleOf(pid);
    for (const tid of tids) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.set(`${pid}/${tid}`, { role, name: tid === pid ? 'main' : name, user: Number(f[11]), system: Number(f[12]) });
      } catch {
        // the thread ended
      }
    }
  }
  return out;
}

/** Rows { role, thread, userMs, systemMs } per `per` (an upload count), largest first. */
function threadCpu(before, after, per) {
  const rows = new Map();
  for (const [ key, t ] of after) {
    const b = before.get(key) ?? { user: 0, system: 0 };
    // libuv's pool threads and V8's workers are numbered: one row per kind
    const thread = process.env.BENCH_THREADS_EACH ? `${t.name} ${key}` : t.name.replace(/\d+$/, '').replace(/[-_ ]+$/, '');
    const k = `${t.role}\t${thread}`;
    const row = rows.get(k) ?? { role: t.role, thread, userMs: 0, systemMs: 0 };
    row.userMs += ((t.user - b.user) * TICK_MS) / per;
    row.systemMs += ((t.system - b.system) * TICK_MS) / per;
    rows.set(k, row);
  }
  return [ ...rows.values() ].filter(r => r.userMs + r.systemMs > 0).sort((a, b) => b.userMs + b.systemMs - a.userMs - a.systemMs);
}

module.exports = { threadSnapshot, threadCpu, roleOf };
