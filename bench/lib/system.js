'use strict';
// The machine, free ports, temp dirs, random files, processes, disk and command-line flags.
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { onCleanup } = require('./cleanup');

function machineInfo() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0] ? cpus[0].model.trim() : 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** A TCP port that was free a moment ago (the OS picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A new directory under os.tmpdir(), deleted by remove() or at cleanup. */
function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const remove = onCleanup(() => fs.promises.rm(dir, { recursive: true, force: true }));
  return { dir, remove };
}

/** Writes `size` random bytes to `file` in 1 MiB chunks; resolves to their sha1 (hex). */
async function writeRandomFile(file, size) {
  const chunk = Buffer.alloc(1024 * 1024);
  const sha1 = crypto.createHash('sha1');
  const fd = await fs.promises.open(file, 'w');
  try {
    for (let written = 0; written < size; written += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, size - written));
      crypto.randomFillSync(part);
      sha1.update(part);
      await fd.write(part);
    }
  } finally {
    await fd.close();
  }
  return sha1.digest('hex');
}

/**
 * Reads the file once so what comes next streams it from the page cache:
 * written at the start, it may have been evicted by then (this VM's DAMON pages
 * out memory idle for ~60 s). Resolves to the seconds it took: seconds mean a disk read.
 */
async function readWholeFile(file) {
  const start = performance.now();
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) void chunk;
  return (performance.now() - start) / 1000;
}

/** Writes back what earlier steps left dirty, so that is not done during the next measurement. */
function settleDisk() {
  execFileSync('sync');
}

/** A shuffled copy of `items` (Fisher-Yates). */
function shuffle(items) {
  const a = [ ...items ];
  for (let i = a.length - 1; i > 0; i--) {
    const j = crypto.randomInt(i + 1);
    [ a[i], a[j] ] = [ a[j], a[i] ];
  }
  return a;
}

/**
 * Every live process of process group `pgid` (Linux /proc): [{ pid, rssMiB,
 * anonMiB, fileMiB, command }] from /proc/<pid>/status: VmRSS, and its parts
 * RssAnon (private memory: heaps) and RssFile (mapped files, e.g. an LMDB map,
 * shared between processes, so summing it over processes counts pages twice).
 * A process that exits meanwhile is skipped.
 */
function processGroupRss(pgid) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // fields after the ")" closing the command name: state ppid pgrp ...
      const [ , , pgrp ] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) !== pgid) continue;
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      const mib = field => {
        const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
        return m ? Number(m[1]) / 1024 : undefined;
      };
      if (mib('VmRSS') === undefined) continue; // a zombie has no memory
      const command = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      found.push({ pid: Number(entry), rssMiB: mib('VmRSS'), anonMiB: mib('RssAnon'), fileMiB: mib('RssFile'), command });
    } catch (err) {
      if (err.code !== 'ENOENT' && err.code !== 'ESRCH') throw err;
    }
  }
  return found.sort((a, b) => a.pid - b.pid);
}

const TICKS_PER_SECOND = 100; // USER_HZ, the unit of /proc/stat and /proc/<pid>/stat on Linux

/** CPU time so far (clock ticks): the whole machine's busy time, and each process's with its group. */
function cpuSnapshot() {
  const [ , ...fields ] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const [ user, nice, system, , , irq, softirq, steal ] = fields;
  const processes = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp ... utime(11) stime(12)
      processes.set(entry, { pgrp: Number(f[2]), ticks: Number(f[11]) + Number(f[12]) });
    } catch (err) {
      if (err.code !== 'ENOENT' && err.code !== 'ESRCH') throw err;
    }
  }
  return { at: performance.now(), busy: user + nice + system + irq + softirq + steal, processes };
}

/** This process's group id: with the servers' groups, what "our" CPU time is. */
function ownProcessGroup() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/**
 * How many cores, on average between two snapshots, did work that is neither ours
 * (the process groups in `ownGroups`: the client and the servers) nor the
 * kernel's own threads (disk writeback and the like, group 0): someone else's tests
 * or builds on a shared machine. 0.5 means half a core taken from the benchmark.
 */
function otherCpuCores(before, after, ownGroups) {
  let own = 0;
  let kernel = 0;
  for (const [ pid, p ] of after.processes) {
    const delta = p.ticks - (before.processes.get(pid)?.ticks ?? 0);
    if (ownGroups.includes(p.pgrp)) own += delta;
    else if (p.pgrp === 0) kernel += delta;
  }
  const seconds = (after.at - before.at) / 1000;
  return Math.max(0, after.busy - before.busy - own - kernel) / TICKS_PER_SECOND / seconds;
}

/**
 * Samples the summed RSS of process group `pgid` every `everyMs` until stop(),
 * which returns { beforeMiB, peakMiB, growthMiB } (S2: what one big upload costs the server).
 */
function watchGroupRss(pgid, everyMs = 100) {
  const total = () => processGroupRss(pgid).reduce((n, p) => n + p.rssMiB, 0);
  const beforeMiB = total();
  let peakMiB = beforeMiB;
  const timer = setInterval(() => { peakMiB = Math.max(peakMiB, total()); }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      peakMiB = Math.max(peakMiB, total());
      return { beforeMiB, peakMiB, growthMiB: peakMiB - beforeMiB };
    },
  };
}

/** Files and directories under `dir` (not counting `dir` itself), i.e. the inodes it uses. */
async function countInodes(dir) {
  let files = 0;
  let dirs = 0;
  const walk = async d => {
    for (const entry of await fs.promises.readdir(d, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        dirs++;
        await walk(path.join(d, entry.name));
      } else {
        files++;
      }
    }
  };
  await walk(dir);
  return { files, dirs, inodes: files + dirs };
}

/**
 * What every scenario prints first: its command line and the machine.
 * Resolves to { command, machine, date } for the results file.
 */
function describeRun(title, scriptFile, args, log = console.log) {
  const machine = machineInfo();
  const command = `node ${path.relative(process.cwd(), scriptFile)} ${args.join(' ')}`.trim();
  const code = codeVersion();
  log(`# ${title}\ncommand: ${command}`);
  log(`machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB RAM, node ${machine.node}, ${machine.os}`);
  log(`code: commit ${code.commit}${code.uncommitted.length ? `, plus uncommitted changes in ${code.uncommitted.join(' ')}` : ''}` +
    (code.distBuiltAt ? `; the demo's build (${process.env.SONOFS_BUILD_DIR || 'dist/'}) made ${code.distBuiltAt}` : ''));
  // the client shares the cores with the servers: anything else running skews the numbers
  const loadAverage = os.loadavg()[0];
  log(`load average (1 min) at start: ${loadAverage.toFixed(2)}` +
    (loadAverage > 0.5 ? ' -- something else is using the CPU; numbers will be lower and noisier' : ''));
  return { command, machine, code, loadAverage, date: new Date().toISOString() };
}

/**
 * The commit measured and the files of the plugin and demo (what dist/ is built
 * from) that differ from it: numbers of a dirty tree are not the commit's numbers.
 */
function codeVersion() {
  const root = path.join(__dirname, '..', '..');
  const git = args => execFileSync('git', args, { cwd: root, stdio: [ 'ignore', 'pipe', 'ignore' ] }).toString();
  try {
    // porcelain lines are "XY path"; X may be a space, so no trim before slicing
    const uncommitted = git([ 'status', '--porcelain', '--', 'lib', 'app', 'config', 'example', 'agent.ts', 'app.ts', 'package.json' ])
      .split('\n').filter(Boolean).map(line => line.slice(3));
    // the demo runs dist/, built from the tree as it was then: a stale build is not this commit
    const built = path.join(path.resolve(root, process.env.SONOFS_BUILD_DIR || 'dist'), 'package.json');
    const distBuiltAt = fs.existsSync(built) ? fs.statSync(built).mtime.toISOString() : undefined;
    return { commit: git([ 'rev-parse', '--short', 'HEAD' ]).trim(), uncommitted, distBuiltAt };
  } catch {
    return { commit: 'unknown (no git)', uncommitted: [] };
  }
}

/** Writes `report` to bench/results/<UTC date-time>-<report.scenario>.json; returns the path. */
function writeResults(report) {
  const dir = path.join(__dirname, '..', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const stamp = report.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const file = path.join(dir, `${stamp}-${report.scenario}.json`);
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

const sha1Hex = data => crypto.createHash('sha1').update(data).digest('hex');

/**
 * Parses --name value and --name=value against `defaults` (numbers stay
 * numbers); unknown flags are an error so typos do not pass silently.
 * `--list-flags` alone prints the flag names as JSON and exits.
 */
function parseFlags(argv, defaults) {
  // for bench/run.js, which hands each scenario only the flags it knows
  if (argv[0] === '--list-flags') {
    console.log(JSON.stringify(Object.keys(defaults)));
    process.exit(0);
  }
  const flags = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([\w-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!match || !(match[1] in defaults)) throw new Error(`unknown argument ${argv[i]}; flags: ${Object.keys(defaults).map(k => `--${k}`).join(' ')}`);
    if (typeof defaults[match[1]] === 'boolean') {
      // a switch: --name, or --name=0 / --name=false to turn it off
      flags[match[1]] = match[2] === undefined || ![ '0', 'false', 'no' ].includes(match[2]);
      continue;
    }
    const raw = match[2] ?? argv[++i];
    if (raw === undefined) throw new Error(`--${match[1]} needs a value`);
    const value = typeof defaults[match[1]] === 'number' ? Number(raw) : raw;
    if (Number.isNaN(value)) throw new Error(`--${match[1]} wants a number, got ${raw}`);
    flags[match[1]] = value;
  }
  return flags;
}

module.exports = {
  machineInfo, freePort, tempDir, writeRandomFile, readWholeFile, settleDisk, shuffle,
  processGroupRss, watchGroupRss, cpuSnapshot, ownProcessGroup, otherCpuCores, countInodes, describeRun, writeResults, sha1Hex, parseFlags,
};
