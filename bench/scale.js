#!/usr/bin/env node
'use strict';
// Scale benchmark (S5), demo only: store --files small files (default 200,000
// x 16 KiB; the issue asks for --files 1000000, which took 20 to 27 minutes on
// the 2-core box) through the HTTP API with --concurrency (64) uploads in flight, stop
// the node and start it again, then report
//   - start-up time after the restart (process start to the ready line),
//   - RSS of every process of the node (launcher, egg-scripts, master, agent, workers),
//   - inodes (files + dirs) and disk used under the data dir, and the allocated bytes
//     per stored file split into bundles, catalog and sessions (du: blocks, not apparent size),
//   - private RAM per stored file: agent + workers' private RSS after the restart minus
//     the same right after the first start (empty store), divided by the files,
//   - random reads right after the restart, no warm-up (that is the point): first
//     --latency-reads (2,000) one at a time (the read latency of the store: p50, p99),
//     then --reads (20,000) with --read-concurrency (16) in flight (reads/s, and
//     p99 under that load, mostly queueing in the two workers), then --latency-reads
//     one at a time again (warm: compiled code, cached pages, as a node up for a while).
// See bench/README.md.
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { runCleanup } = require('./lib/cleanup');
const { keepAliveAgent, request } = require('./lib/http-client');
const { runClosedLoop } = require('./lib/load');
const { PEERS, pickPeers, startPeer } = require('./lib/peers');
const { formatTable } = require('./lib/table');
const { SmallUploads, uploadSmall } = require('./lib/uploads');
const { tempDir, settleDisk, processGroupRss, countInodes, describeRun, writeResults, sha1Hex, parseFlags,
  cpuSnapshot, ownProcessGroup, otherCpuCores } = require('./lib/system');

const KiB = 1024;
const PROGRESS_MS = 30_000;

const DEFAULTS = {
  files: 200_000, concurrency: 64, 'size-kib': 16,
  reads: 20000, 'read-concurrency': 16, 'check-every': 10, 'latency-reads': 2000,
};

const log = message => console.log(message);

/**
 * Uploads `files` distinct small files to the demo, logging progress; resolves
 * to the closed-loop result, the FileId of each upload (by index) and the rate per
 * progress interval (to see whether uploads slow down as the store grows).
 */
async function store(peer, port, flags, uploads, tag) {
  const agent = keepAliveAgent(flags.concurrency);
  const ids = new Array(flags.files);
  const progress = [];
  let done = 0;
  let last = { at: performance.now(), done: 0 };
  const start = last.at;
  const timer = setInterval(() => {
    const now = performance.now();
    const rate = (done - last.done) / ((now - last.at) / 1000);
    progress.push({ seconds: (now - start) / 1000, files: done, uploadsPerSec: rate });
    log(`  ${done.toLocaleString('en-US')} files after ${((now - start) / 1000).toFixed(0)} s, ${rate.toFixed(0)} uploads/s in the last interval`);
    last = { at: now, done };
  }, PROGRESS_MS);
  try {
    const result = await runClosedLoop({
      count: flags.files, concurrency: flags.concurrency,
      task: async (i, lane) => {
        ids[i] = (await uploadSmall(peer, port, agent, uploads, lane, tag, i)).FileId;
        done++;
      },
    });
    return { result, ids, progress };
  } finally {
    clearInterval(timer);
    agent.destroy();
  }
}

/**
 * Random reads of the stored files: every read's status and size checked, the
 * sha1 of every `checkEvery`th compared with the content rebuilt from its index.
 */
async function randomReads(peer, port, ids, uploads, tag, { count, concurrency, checkEvery }) {
  const agent = keepAliveAgent(concurrency);
  const stored = ids.map((id, index) => ({ id, index })).filter(s => s.id);
  let sha1Checked = 0;
  try {
    const result = await runClosedLoop({
      count, concurrency,
      task: async i => {
        const { id, index } = stored[Math.floor(Math.random() * stored.length)];
        const res = await request({ agent, port, path: peer.downloadPath({ FileId: id }) });
        if (res.status !== 200) throw new Error(`${id}: HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
        if (res.body.length !== uploads.size) throw new Error(`${id}: ${res.body.length} bytes, sent ${uploads.size}`);
        if (checkEvery > 0 && i % checkEvery === 0) {
          sha1Checked++;
          if (sha1Hex(res.body) !== sha1Hex(uploads.content(tag, index))) throw new Error(`${id}: downloaded bytes differ from upload #${index}`);
        }
      },
    });
    return { ...result, sha1Checked };
  } finally {
    agent.destroy();
  }
}

/** What each process of the node is, from its command line (egg-cluster's file names). */
function role(command) {
  if (/agent_worker/.test(command)) return 'agent';
  if (/app_worker/.test(command)) return 'worker';
  if (/start-cluster/.test(command)) return 'master';
  if (/egg-scripts/.test(command)) return 'egg-scripts';
  if (/scripts\/start\.js/.test(command)) return 'launcher (start.js)';
  return command.slice(0, 60);
}

function rssOf(server) {
  const processes = processGroupRss(server.pid).map(p => ({ ...p, role: role(p.command) }));
  const sum = (key, roles) => processes.filter(p => !roles || roles.includes(p.role)).reduce((a, p) => a + (p[key] || 0), 0);
  return {
    processes,
    agentAndWorkersMiB: sum('rssMiB', [ 'agent', 'worker' ]),
    agentAndWorkersAnonMiB: sum('anonMiB', [ 'agent', 'worker' ]),
    totalMiB: sum('rssMiB'),
  };
}

function logRss(label, rss) {
  log(`${label} (RSS = private + mapped files): ` +
    `${rss.processes.map(p => `${p.role} ${p.rssMiB.toFixed(0)} = ${p.anonMiB.toFixed(0)} + ${p.fileMiB.toFixed(0)} MiB`).join(', ')}; ` +
    `agent + workers ${rss.agentAndWorkersMiB.toFixed(0)} MiB (private ${rss.agentAndWorkersAnonMiB.toFixed(0)} MiB), all ${rss.totalMiB.toFixed(0)} MiB`);
}

/** The master's own start-up time, from its "egg started on ... (NNNms)" line. */
function masterStartMs(server) {
  for (const line of server.output) {
    const m = /egg started on \S+ \((\d+)ms\)/.exec(line);
    if (m) return Number(m[1]);
  }
  return undefined;
}

function diskUsedMiB(dir) {
  return Number(execFileSync('du', [ '-sk', dir ]).toString().split('\t')[0]) / 1024;
}

/**
 * Allocated bytes per stored file (du: blocks, not apparent size), split into
 * the catalog (root/meta), upload sessions (root/sessions) and the rest: the bundles.
 */
function bytesPerFile(dataDir, files) {
  const fs = require('node:fs');
  const part = name => (fs.existsSync(path.join(dataDir, name)) ? diskUsedMiB(path.join(dataDir, name)) : 0);
  const total = diskUsedMiB(dataDir);
  const catalog = part('meta');
  const sessions = part('sessions');
  const per = mib => (mib * 1024 * 1024) / files;
  return { total: per(total), catalog: per(catalog), sessions: per(sessions), bundles: per(total - catalog - sessions) };
}

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  const [ name ] = pickPeers('demo');
  const peer = PEERS[name];
  const run = describeRun('scale benchmark (S5)', __filename, args, log);
  log(`S5: ${flags.files} uploads of ${flags['size-kib']} KiB to the demo, ${flags.concurrency} in flight; restart; ` +
    `${flags.reads} random reads, ${flags['read-concurrency']} in flight`);
  log(`peer: ${name} (${peer.describe})\n`);

  const work = tempDir('sonofs-bench-scale-');
  const r = {};
  let server;
  try {
    let started = await startPeer(name, work.dir, log);
    server = started.server;
    r.firstStart = { seconds: started.startSeconds, masterMs: masterStartMs(server) };
    r.rssAfterFirstStart = rssOf(server);
    logRss('RSS after the first start (empty store)', r.rssAfterFirstStart);

    const uploads = new SmallUploads(flags['size-kib'] * KiB, flags.concurrency);
    const tag = crypto.randomBytes(8);
    let cpuBefore = cpuSnapshot();
    const stored = await store(peer, started.port, flags, uploads, tag);
    r.store = { ...stored.result, progress: stored.progress, otherCpuCores: otherCpuCores(cpuBefore, cpuSnapshot(), [ ownProcessGroup(), server.pid ]) };
    const s = r.store;
    log(`stored ${s.ok} files in ${s.seconds.toFixed(0)} s = ${s.opsPerSec.toFixed(0)} uploads/s, p50 ${s.p50Ms.toFixed(1)} ms, ` +
      `p99 ${s.p99Ms.toFixed(1)} ms, errors ${s.errors}, other processes used ${s.otherCpuCores.toFixed(2)} cores meanwhile` + (s.errorSamples.length ? `\n  ${s.errorSamples.join('\n  ')}` : ''));
    r.rssBeforeRestart = rssOf(server);
    logRss('RSS after the uploads', r.rssBeforeRestart);

    const stopAt = performance.now();
    await server.stop();
    r.stopSeconds = (performance.now() - stopAt) / 1000;
    log(`stopped in ${r.stopSeconds.toFixed(1)} s`);
    r.dataDir = { ...await countInodes(started.dataDir), diskMiB: diskUsedMiB(started.dataDir), bytesPerFile: bytesPerFile(started.dataDir, r.store.ok) };
    const b = r.dataDir.bytesPerFile;
    log(`data dir: ${r.dataDir.inodes} inodes (${r.dataDir.files} files, ${r.dataDir.dirs} dirs), ${r.dataDir.diskMiB.toFixed(0)} MiB on disk; ` +
      `allocated per file: ${b.total.toFixed(0)} B (bundles ${b.bundles.toFixed(0)}, catalog ${b.catalog.toFixed(0)}, sessions ${b.sessions.toFixed(0)})`);

    started = await startPeer(name, work.dir, log); // same data dir; startPeer syncs first
    server = started.server;
    r.restart = { seconds: started.startSeconds, masterMs: masterStartMs(server) };
    log(`restart: ready line after ${r.restart.seconds.toFixed(2)} s (master says ${r.restart.masterMs} ms)`);
    r.rssAfterStart = rssOf(server);
    logRss('RSS after the restart', r.rssAfterStart);

    /** --latency-reads random reads one at a time: the store's read latency, without queueing. */
    const readsOneAtATime = async when => {
      const lr = await randomReads(peer, started.port, stored.ids, uploads, tag,
        { count: flags['latency-reads'], concurrency: 1, checkEvery: flags['check-every'] });
      log(`reads one at a time ${when}: ${lr.ok}, p50 ${lr.p50Ms.toFixed(2)} ms, p99 ${lr.p99Ms.toFixed(2)} ms, ` +
        `max ${lr.maxMs.toFixed(1)} ms, errors ${lr.errors}` + (lr.errorSamples.length ? `\n  ${lr.errorSamples.join('\n  ')}` : ''));
      return lr;
    };
    r.latencyReads = await readsOneAtATime('after the restart');
    cpuBefore = cpuSnapshot();
    r.reads = await randomReads(peer, started.port, stored.ids, uploads, tag,
      { count: flags.reads, concurrency: flags['read-concurrency'], checkEvery: flags['check-every'] });
    r.reads.otherCpuCores = otherCpuCores(cpuBefore, cpuSnapshot(), [ ownProcessGroup(), server.pid ]);
    const rd = r.reads;
    log(`reads after the restart: ${rd.ok} in ${rd.seconds.toFixed(1)} s = ${rd.opsPerSec.toFixed(0)}/s, p50 ${rd.p50Ms.toFixed(2)} ms, ` +
      `p99 ${rd.p99Ms.toFixed(2)} ms, max ${rd.maxMs.toFixed(1)} ms, errors ${rd.errors}, sha1 checked on ${rd.sha1Checked}, ` +
      `other processes used ${rd.otherCpuCores.toFixed(2)} cores meanwhile` +
      (rd.errorSamples.length ? `\n  ${rd.errorSamples.join('\n  ')}` : ''));
    // The same one at a time again, now that the code is compiled and the pages read are cached:
    // the store's read latency at this size, as a node that has been up for a while answers.
    r.warmLatencyReads = await readsOneAtATime('after those');
    r.rssAfterReads = rssOf(server);
    logRss('RSS after the reads', r.rssAfterReads);
    await server.stop();
    settleDisk();
  } finally {
    if (server) await server.stop();
    await work.remove();
  }

  const columns = [ { key: 'what', title: 'S5 (demo)' }, { key: 'value', title: 'value' } ];
  const privateGrowth = r.rssAfterStart.agentAndWorkersAnonMiB - r.rssAfterFirstStart.agentAndWorkersAnonMiB;
  r.privateBytesPerFile = Math.max(0, privateGrowth) * 2 ** 20 / r.store.ok;
  const fmt = (n, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  log(`\n${formatTable(columns, [
    { what: 'files stored', value: fmt(r.store.ok) },
    { what: 'start-up, empty store, s', value: fmt(r.firstStart.seconds, 2) },
    { what: 'uploads/s (whole fill)', value: fmt(r.store.opsPerSec) },
    { what: 'start-up after restart, s', value: fmt(r.restart.seconds, 2) },
    { what: 'RSS agent + workers after start, MiB', value: fmt(r.rssAfterStart.agentAndWorkersMiB) },
    { what: '  of which private (RssAnon), MiB', value: fmt(r.rssAfterStart.agentAndWorkersAnonMiB) },
    { what: '  private, empty store at first start, MiB', value: fmt(r.rssAfterFirstStart.agentAndWorkersAnonMiB) },
    { what: 'private RAM per stored file, bytes', value: fmt(r.privateBytesPerFile, 1) },
    { what: 'RSS all processes after start, MiB', value: fmt(r.rssAfterStart.totalMiB) },
    { what: 'RSS agent + workers after the reads, MiB', value: fmt(r.rssAfterReads.agentAndWorkersMiB) },
    { what: 'inodes under the data dir', value: fmt(r.dataDir.inodes) },
    { what: 'disk used, MiB', value: fmt(r.dataDir.diskMiB) },
    { what: 'allocated per file, B: bundles / catalog / sessions', value: ['bundles', 'catalog', 'sessions'].map(k => fmt(r.dataDir.bytesPerFile[k])).join(' / ') },
    { what: 'read p50 / p99 ms, one at a time (cold)', value: `${fmt(r.latencyReads.p50Ms, 2)} / ${fmt(r.latencyReads.p99Ms, 2)}` },
    { what: `reads/s, ${flags['read-concurrency']} in flight`, value: fmt(r.reads.opsPerSec) },
    { what: `read p50 / p99 ms, ${flags['read-concurrency']} in flight`, value: `${fmt(r.reads.p50Ms, 2)} / ${fmt(r.reads.p99Ms, 2)}` },
    { what: 'read p50 / p99 ms, one at a time (warm)', value: `${fmt(r.warmLatencyReads.p50Ms, 2)} / ${fmt(r.warmLatencyReads.p99Ms, 2)}` },
    { what: 'other CPU during uploads / reads, cores', value: `${fmt(r.store.otherCpuCores, 2)} / ${fmt(r.reads.otherCpuCores, 2)}` },
  ])}\n`);
  const file = writeResults({ scenario: 'scale', ...run, settings: flags, units: { latency: 'ms', rss: 'MiB' }, results: r });
  log(`results: ${path.relative(process.cwd(), file)}`);
  const readErrors = r.reads.errors + r.latencyReads.errors + r.warmLatencyReads.errors;
  if (r.store.errors || readErrors) {
    console.error(`\nSOMETHING WENT WRONG: ${r.store.errors} uploads and ${readErrors} reads failed`);
    process.exitCode = 1;
  }
}

main().catch(async err => {
  console.error(err.stack || err.message);
  await runCleanup();
  process.exitCode = 1;
});
