#!/usr/bin/env node
'use strict';
// Cluster mode (issue 14), in one run:
//   embedded  one node, no Redis: the current build, and --before-build beside it
//             (the build before cluster mode) when given, in alternating order
//   cluster-1 one node with a Redis registry
//   cluster-3 three nodes on one Redis: group 1 with servers 1 and 2, group 2 with server 1
//             (replication 'all', the default); cluster-3-one: the same with replication 'one'
//             (not in the default --setups; alternated with cluster-3 from round to round)
// Each: --count small uploads (--size-kib, --concurrency in flight) spread over
// the nodes in turn, then --reads reads by file id, each from a random node (in
// cluster-3 mostly not the node that stored it), a sample checked by sha1.
// During the cluster-3 uploads every node's /file/cluster is polled for the
// replication lag of each member (bytes and ms, as the node reports it), and
// after them the time until every member reports no lag.
// --via tus: each upload is a tus POST, then its bytes in two PATCHes (the first half is an
// unfinished upload's write: with replication 'all' the group's members keep a copy of it
// before it is answered, so one can take the upload over should its node die).
// CPU is counted for every process of every node and of redis-server, per operation.
// --before-cluster 1 runs the cluster setups on the --before-build too, beside the current one.
//   node bench/cluster.js [--count 3000] [--reads 3000] [--before-build /tmp/b] [--before-cluster 0|1] [--workers 1] [--rounds 1] [--via upload|tus]
// Nodes run the build in dist/ (or SONOFS_BUILD_DIR) with EGG_WORKERS=--workers.
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const { runCleanup, onCleanup } = require('./lib/cleanup');
const { keepAliveAgent, request } = require('./lib/http-client');
const { runClosedLoop } = require('./lib/load');
const { PEERS, ROOT, demoBuildDir } = require('./lib/peers');
const { startServer } = require('./lib/server-process');
const { formatTable } = require('./lib/table');
const { SmallUploads, uploadSmall } = require('./lib/uploads');
const { tempDir, freePort, describeRun, writeResults, sha1Hex, parseFlags, cpuSnapshot, settleDisk } = require('./lib/system');

const KiB = 1024;
const DEFAULTS = {
  count: 3000, reads: 3000, 'size-kib': 16, concurrency: 16, warmup: 300, verify: 200, workers: 1, rounds: 1,
  'before-build': '', 'before-cluster': '0', setups: 'embedded,cluster-1,cluster-3', 'lag-timeout-s': 120, via: 'upload',
};
const SECRET = 'bench-cluster-secret';
const log = message => console.log(message);

const SETUPS = {
  embedded: { nodes: [ { group: 1, server: 1 } ], redis: false },
  'cluster-1': { nodes: [ { group: 1, server: 1 } ], redis: true },
  'cluster-3': { nodes: [ { group: 1, server: 1 }, { group: 1, server: 2 }, { group: 2, server: 1 } ], redis: true },
  // the same three nodes acknowledging before the members copy (replication 'one'), for the cost of 'all'
  'cluster-3-one': { nodes: [ { group: 1, server: 1 }, { group: 1, server: 2 }, { group: 2, server: 1 } ], redis: true, env: { SONOFS_REPLICATION: 'one' } },
};

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  const report = { scenario: 'cluster', ...describeRun('Cluster mode: one node and three', __filename, args, log), flags, runs: [] };
  const work = tempDir('sonofs-bench-cluster-');
  const builds = [ { name: 'current', dir: demoBuildDir() } ];
  if (flags['before-build']) builds.push({ name: 'before', dir: path.resolve(flags['before-build']) });
  for (const b of builds) {
    if (!fs.existsSync(path.join(b.dir, 'example'))) throw new Error(`no demo build in ${b.dir}: node scripts/build.js ${b.dir}`);
  }
  log(`nodes: the demo (egg-scripts, ${flags.workers} worker(s) each, fsync on); builds: ${builds.map(b => `${b.name} ${b.dir}`).join(', ')}\n`);
  const setups = flags.setups.split(',').filter(Boolean);
  for (const s of setups) if (!SETUPS[s]) throw new Error(`unknown setup ${s}; setups: ${Object.keys(SETUPS).join(', ')}`);

  for (let round = 0; round < flags.rounds; round++) {
    const runs = [];
    for (const setup of round % 2 ? [ ...setups ].reverse() : setups) {
      // the embedded node of each build, in alternating order; cluster setups on the current build (both with --before-cluster 1)
      const both = setup === 'embedded' || flags['before-cluster'] === '1';
      const bs = both ? (round % 2 ? [ ...builds ].reverse() : builds) : [ builds[0] ];
      for (const build of bs) runs.push({ setup, build });
    }
    for (const { setup, build } of runs) {
      const dir = path.join(work.dir, `r${round + 1}-${setup}-${build.name}`);
      const result = await runSetup(setup, build, dir, flags);
      report.runs.push({ round: round + 1, setup, build: build.name, ...result });
    }
  }
  printSummary(report.runs);
  log(`\nresults: ${path.relative(process.cwd(), writeResults(report))}`);
  await runCleanup();
  if (report.runs.some(r => r.uploadErrors || r.readErrors || r.problems)) {
    console.error('\nSOMETHING WENT WRONG: errors above');
    process.exitCode = 1;
  }
}

/** Starts the setup's nodes (and Redis), measures uploads and reads, stops everything. */
async function runSetup(setup, build, dir, flags) {
  const spec = SETUPS[setup];
  fs.mkdirSync(dir, { recursive: true });
  settleDisk();
  const redis = spec.redis ? await startRedis(dir) : undefined;
  const nodes = [];
  try {
    for (const n of spec.nodes) nodes.push(await startNode(n, build, dir, flags, redis, spec.env));
    if (redis) await untilEveryNodeSeesAll(nodes);
    log(`== ${setup} (${build.name}): ${nodes.map(n => `g${n.group}s${n.server} on ${n.port}`).join(', ')}`);
    const groups = [ ...nodes.map(n => n.proc.pid), ...(redis ? [ redis.pid ] : []) ];
    const three = spec.nodes.length === 3;
    const up = await uploads(nodes, flags, groups, three);
    const lagDrain = three ? await waitForNoLag(nodes, flags['lag-timeout-s']) : undefined;
    const rd = await reads(nodes, up, flags, groups);
    const row = {
      uploadsPerSec: up.result.opsPerSec, uploadP50: up.result.p50Ms, uploadP99: up.result.p99Ms, uploadCpuMs: up.cpuMsPerOp, uploadErrors: up.result.errors,
      readsPerSec: rd.result.opsPerSec, readP50: rd.result.p50Ms, readP99: rd.result.p99Ms, readCpuMs: rd.cpuMsPerOp, readErrors: rd.result.errors,
      remoteShare: rd.remoteShare, verified: rd.verified, problems: rd.problems.length,
      lag: up.lag, lagDrainSeconds: lagDrain,
    };
    log(`   uploads ${row.uploadsPerSec.toFixed(0)}/s (p50 ${row.uploadP50.toFixed(1)} ms, p99 ${row.uploadP99.toFixed(1)} ms), ` +
      `${row.uploadCpuMs.toFixed(2)} ms CPU each, errors ${row.uploadErrors}${up.result.errorSamples.length ? ` (${up.result.errorSamples[0]})` : ''}`);
    log(`   reads ${row.readsPerSec.toFixed(0)}/s (p50 ${row.readP50.toFixed(2)} ms, p99 ${row.readP99.toFixed(2)} ms), ${row.readCpuMs.toFixed(2)} ms CPU each, ` +
      `${(100 * row.remoteShare).toFixed(0)}% from a node that did not store the file, errors ${row.readErrors}, ` +
      `sha1 checked on ${row.verified}${rd.problems.length ? `, PROBLEMS: ${rd.problems.slice(0, 3).join('; ')}` : ''}`);
    if (up.lag) {
      log(`   replication lag during the uploads (max over members and samples): ${fmtLag(up.lag)}; ` +
        `${lagDrain === null ? `still lagging after ${flags['lag-timeout-s']} s` : `no lag ${lagDrain.toFixed(1)} s after the last upload`}`);
    }
    return row;
  } finally {
    for (const n of nodes.reverse()) await n.proc.stop();
    await redis?.stop();
  }
}

/** One demo node of `build` on a free port; in cluster mode with the Redis URL and its group and server. */
async function startNode({ group, server }, build, dir, flags, redis, extraEnv = {}) {
  const port = await freePort();
  const root = path.join(dir, `g${group}s${server}`);
  const env = {
    PORT: String(port), EGG_WORKERS: String(flags.workers), SONOFS_ROOT: root, SONOFS_BUILD_DIR: build.dir,
    SONOFS_LOG_DIR: path.join(dir, `logs-g${group}s${server}`), EGG_TITLE: `sonofs-bench-cluster-${port}`,
    ...(redis ? { SONOFS_REDIS_URL: redis.url, SONOFS_GROUP: String(group), SONOFS_SERVER: String(server), SONOFS_CLUSTER_SECRET: SECRET } : {}),
    ...extraEnv,
  };
  const proc = await startServer({
    name: `node g${group}s${server}`, args: [ path.join(ROOT, 'scripts', 'start.js') ], cwd: ROOT, env,
    ready: `egg started on http://127.0.0.1:${port}`, timeoutMs: 120_000,
  });
  return { group, server, port, proc };
}

/** A redis-server of this run on a free loopback port, no persistence; stopped at the end. */
async function startRedis(dir) {
  const port = await freePort();
  const child = spawn('redis-server', [ '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no' ],
    { stdio: 'ignore', detached: true });
  const exited = new Promise(resolve => child.once('exit', resolve));
  const stop = onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; ; i++) {
    if (await accepts(port)) break;
    if (i > 100) throw new Error(`redis-server did not listen on ${port}`);
    await new Promise(r => setTimeout(r, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid, stop };
}

function accepts(port) {
  return new Promise(resolve => {
    const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function clusterOf(node) {
  const res = await request({ port: node.port, path: '/file/cluster', headers: { accept: 'application/json' } });
  return JSON.parse(res.body.toString());
}

async function untilEveryNodeSeesAll(nodes) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const views = await Promise.all(nodes.map(clusterOf));
    if (views.every(v => (v.nodes || []).filter(n => n.state === 'up').length >= nodes.length)) return;
    if (Date.now() > deadline) throw new Error(`the nodes do not see each other: ${JSON.stringify(views.map(v => v.nodes))}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

/** CPU ms of the given process groups between two snapshots. */
function groupsCpuMs(before, after, groups) {
  let ticks = 0;
  for (const [ pid, p ] of after.processes) {
    if (groups.includes(p.pgrp)) ticks += p.ticks - (before.processes.get(pid)?.ticks ?? 0);
  }
  return ticks * 10;
}

/** Small uploads spread over the nodes in turn (lane i sends to node i mod n); polls the lag meanwhile in cluster-3. */
async function uploads(nodes, flags, groups, watchLag) {
  const small = new SmallUploads(flags['size-kib'] * KiB, flags.concurrency);
  const agents = nodes.map(() => keepAliveAgent(flags.concurrency));
  const nodeOf = lane => nodes[lane % nodes.length];
  const one = flags.via === 'tus' ? tusTwoPatches : (port, agent, lane, tag, i) => uploadSmall(PEERS.demo, port, agent, small, lane, tag, i);
  const send = (tag, answers) => (i, lane) => one(nodeOf(lane).port, agents[lane % nodes.length], lane, tag, i, small)
    .then(data => { if (answers) answers[i] = { data, node: nodeOf(lane) }; });
  try {
    await runClosedLoop({ count: flags.warmup, concurrency: flags.concurrency, task: send(crypto.randomBytes(8)) });
    const tag = crypto.randomBytes(8);
    const answers = new Array(flags.count);
    const lag = watchLag ? pollLag(nodes) : undefined;
    const before = cpuSnapshot();
    const result = await runClosedLoop({ count: flags.count, concurrency: flags.concurrency, task: send(tag, answers) });
    const after = cpuSnapshot();
    return { result, answers, small, tag, cpuMsPerOp: groupsCpuMs(before, after, groups) / Math.max(1, result.ok), lag: lag && await lag.stop() };
  } finally {
    agents.forEach(a => a.destroy());
  }
}

/** A tus upload of one small file: POST, then the first half and the rest in two PATCHes; answers what /file/upload would. */
async function tusTwoPatches(port, agent, lane, tag, i, small) {
  const content = small.content(tag, i);
  const tus = { 'Tus-Resumable': '1.0.0' };
  const created = await request({ agent, port, method: 'POST', path: '/files/', headers: { ...tus, 'Upload-Length': String(content.length), 'Content-Length': 0 } });
  if (created.status !== 201) throw new Error(`POST: HTTP ${created.status}: ${created.body.toString().slice(0, 200)}`);
  const path = new URL(created.headers.location, `http://127.0.0.1:${port}`).pathname;
  const half = content.length >> 1;
  let answer;
  for (const [ from, to ] of [ [ 0, half ], [ half, content.length ] ]) {
    answer = await request({
      agent, port, method: 'PATCH', path, body: content.subarray(from, to),
      headers: { ...tus, 'Upload-Offset': String(from), 'Content-Type': 'application/offset+octet-stream', 'Content-Length': to - from },
    });
    if (answer.status !== 204) throw new Error(`PATCH: HTTP ${answer.status}: ${answer.body.toString().slice(0, 200)}`);
  }
  return { FileId: answer.headers['sonofs-file-id'], FileSha1: sha1Hex(content) };
}

/** Reads by file id, each from a random node; checks the sha1 of `verify` of them. */
async function reads(nodes, up, flags, groups) {
  const stored = up.answers.filter(Boolean);
  if (!stored.length) throw new Error('nothing was stored');
  const agents = nodes.map(() => keepAliveAgent(flags.concurrency));
  const problems = [];
  let remote = 0;
  let verified = 0;
  const checkEvery = Math.max(1, Math.floor(flags.reads / flags.verify));
  try {
    const before = cpuSnapshot();
    const result = await runClosedLoop({
      count: flags.reads, concurrency: flags.concurrency,
      task: async i => {
        const pick = stored[Math.floor(Math.random() * stored.length)];
        const which = Math.floor(Math.random() * nodes.length);
        if (nodes[which] !== pick.node) remote++;
        const res = await request({ agent: agents[which], port: nodes[which].port, path: PEERS.demo.downloadPath(pick.data) });
        if (res.status !== 200) throw new Error(`HTTP ${res.status} from g${nodes[which].group}s${nodes[which].server}: ${res.body.toString().slice(0, 200)}`);
        if (i % checkEvery === 0) {
          verified++;
          if (sha1Hex(res.body) !== pick.data.FileSha1) problems.push(`${pick.data.FileId} from g${nodes[which].group}s${nodes[which].server}: other bytes`);
        }
      },
    });
    const after = cpuSnapshot();
    return { result, cpuMsPerOp: groupsCpuMs(before, after, groups) / Math.max(1, result.ok), remoteShare: remote / flags.reads, verified, problems };
  } finally {
    agents.forEach(a => a.destroy());
  }
}

/** Every numeric lag a node reports for its members (fields named like replicationLag*), as the max seen. */
function lagOf(view) {
  const out = {};
  for (const n of view.nodes || []) {
    for (const [ k, v ] of Object.entries(n)) {
      if (/lag/i.test(k) && typeof v === 'number') out[k] = Math.max(out[k] ?? 0, v);
    }
  }
  return out;
}

function pollLag(nodes) {
  const max = {};
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const views = await Promise.all(nodes.map(n => clusterOf(n).catch(() => ({}))));
      for (const v of views) for (const [ k, x ] of Object.entries(lagOf(v))) max[k] = Math.max(max[k] ?? 0, x);
      samples++;
      await new Promise(r => setTimeout(r, 250));
    }
  })();
  return { async stop() { stopped = true; await loop; return { ...max, samples }; } };
}

/** Seconds until no node reports a lag above 0 (null after `timeoutS`); undefined lag fields count as none. */
async function waitForNoLag(nodes, timeoutS) {
  const start = performance.now();
  for (;;) {
    const views = await Promise.all(nodes.map(clusterOf));
    if (views.every(v => Object.values(lagOf(v)).every(x => x === 0))) return (performance.now() - start) / 1000;
    if (performance.now() - start > timeoutS * 1000) return null;
    await new Promise(r => setTimeout(r, 100));
  }
}

function fmtLag(lag) {
  const fields = Object.entries(lag).filter(([ k ]) => k !== 'samples');
  if (!fields.length) return `none reported (${lag.samples} samples; the nodes report no lag fields)`;
  return `${fields.map(([ k, v ]) => `${k} ${v}`).join(', ')} over ${lag.samples} samples`;
}

function printSummary(runs) {
  const rows = runs.map(r => ({
    run: `${r.round}: ${r.setup}${r.setup === 'embedded' || r.build !== 'current' || runs.some(x => x.setup === r.setup && x.build !== 'current') ? ` (${r.build})` : ''}`,
    up: r.uploadsPerSec, upCpu: r.uploadCpuMs, rd: r.readsPerSec, rdP99: r.readP99, rdCpu: r.readCpuMs,
    remote: `${(100 * r.remoteShare).toFixed(0)}%`, errors: r.uploadErrors + r.readErrors + r.problems,
    drain: r.lagDrainSeconds === undefined ? '' : r.lagDrainSeconds === null ? 'timeout' : r.lagDrainSeconds,
  }));
  log(`\n${formatTable([
    { key: 'run', title: 'round: setup' },
    { key: 'up', title: 'uploads/s' }, { key: 'upCpu', title: 'CPU ms/upload', digits: 2 },
    { key: 'rd', title: 'reads/s' }, { key: 'rdP99', title: 'read p99 ms', digits: 2 }, { key: 'rdCpu', title: 'CPU ms/read', digits: 2 },
    { key: 'remote', title: 'read elsewhere' }, { key: 'errors', title: 'errors' }, { key: 'drain', title: 'lag gone after s', digits: 1 },
  ], rows)}`);
  log('CPU: every process of every node (master, agent, workers) and redis-server, per operation.');
}

main().catch(async err => {
  console.error(err.stack || err.message);
  await runCleanup();
  process.exitCode = 1;
});
